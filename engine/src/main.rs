//! The `switchyard` command line.

fn main() -> std::process::ExitCode {
    switchyard::cli::main()
}
