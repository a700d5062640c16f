# Sourced by the Windows scripts: the environment that builds Torque for
# x86_64-pc-windows-gnu with Debian's Rust 1.96 (-Zbuild-std, RUSTC_BOOTSTRAP=1),
# links with mingw-w64 and runs test executables under Wine.
export PATH="/usr/bin:$PATH" RUSTC_BOOTSTRAP=1 RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc
# Its own target directory, apart from rustup's builds (sourcing twice keeps it).
case "${CARGO_TARGET_DIR:-}" in
    */windows) ;;
    *) export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}/windows" ;;
esac
export CARGO_INCREMENTAL=0 CARGO_TERM_COLOR=never
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER=x86_64-w64-mingw32-gcc
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER=/usr/lib/wine/wine64
export WINEDEBUG=-all
WINDOWS_TARGET=x86_64-pc-windows-gnu
