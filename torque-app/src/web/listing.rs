//! Directory listings: a plain HTML page, every name escaped.

use std::fmt::Write;
use std::fs::File;
use std::io;
use std::path::Path;

use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};

/// Characters escaped in a link to a name in the listed directory.
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}');

/// Escapes text for HTML element content and attribute values.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// The listing page of the open directory `dir` (at `dir_path`), shown as `shown_path` (the
/// request path, already decoded); names starting with `.` only with
/// `show_hidden`.
pub fn render(dir: &File, dir_path: &Path, shown_path: &str, show_hidden: bool) -> io::Result<String> {
    let mut names = crate::platform::list_dir(dir, dir_path)?;
    names.retain(|(name, _)| show_hidden || !name.starts_with('.'));
    names.sort();
    let title = escape_html(shown_path);
    let mut page = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Index of {title}</title></head>\n\
         <body><h1>Index of {title}</h1>\n<ul>\n"
    );
    if shown_path != "/" {
        page.push_str("<li><a href=\"../\">../</a></li>\n");
    }
    for (name, is_dir) in &names {
        let slash = if *is_dir { "/" } else { "" };
        let href = utf8_percent_encode(name, SEGMENT).to_string();
        // Writing into a String cannot fail.
        let _ = writeln!(
            page,
            "<li><a href=\"./{}{slash}\">{}{slash}</a></li>",
            escape_html(&href),
            escape_html(name)
        );
    }
    page.push_str("</ul>\n</body></html>\n");
    Ok(page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_escaped() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("<img src=x onerror=alert(1)>"), b"x").unwrap();
        std::fs::write(dir.path().join("a&b \"q\".txt"), b"x").unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let page = render(&File::open(dir.path()).unwrap(), dir.path(), "/<x>/", false).unwrap();
        assert!(!page.contains("<img"), "{page}");
        assert!(page.contains("&lt;img src=x onerror=alert(1)&gt;"), "{page}");
        assert!(page.contains("a&amp;b &quot;q&quot;.txt"), "{page}");
        assert!(page.contains("href=\"./a&amp;b%20%22q%22.txt\""), "{page}");
        assert!(page.contains("href=\"./sub/\">sub/</a>"), "{page}");
        assert!(page.contains("Index of /&lt;x&gt;/"), "{page}");
    }
}
