use clap::Parser;
use kaprobe::cli::{self, Cli, Command};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) if !e.use_stderr() => {
            let _ = e.print(); // --help, --version
            return ExitCode::from(cli::exit::OK);
        }
        Err(e) => {
            eprintln!("kaprobe: {}", one_line(&e.render().to_string()));
            return ExitCode::from(cli::exit::USAGE);
        }
    };
    ExitCode::from(match &cli.command {
        Command::Verify(args) => cli::verify::run(args),
        Command::Probe(args) => cli::probe::run(args),
        Command::Explain(args) => cli::explain::run(args),
    })
}

/// clap's message without its `error:` prefix, hints and blank lines, on one line.
fn one_line(msg: &str) -> String {
    msg.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("For more information"))
        .map(|l| l.strip_prefix("error: ").unwrap_or(l))
        .collect::<Vec<_>>()
        .join(" ")
}
