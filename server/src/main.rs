//! The `codetier` binary: parses the command line and hands over to the CLI or the LSP server.

fn main() -> std::process::ExitCode {
    codetier::cli::main()
}
