//! `torque`: run a service on a chosen reactor. See `torque --help`.

fn main() -> std::process::ExitCode {
    torque_app::cli::main()
}
