use clap::Parser;
use kaprobe::cli::{self, Cli, Command};
use std::process::ExitCode;

/// mimalloc takes its memory in 2 MiB-aligned regions and asks for
/// transparent huge pages: flow state is read at random, and with 4 KiB
/// pages nearly every flow touched costs a TLB miss (a two-level page walk
/// under virtualization): a sixth of verify's CPU time on 50,000 flows. The
/// kernel zeroes each huge page on first touch; on a VM that hands free
/// memory back to its host (this project's), that costs up to 0.3 s when the
/// memory was handed back since the last run.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
        Command::IdleTimeout(args) => cli::idle::run(args),
        Command::Conform(args) => cli::conform::run(args),
        Command::Replay(args) => cli::replay::run(args),
        Command::Watch(args) => cli::watch::run(args),
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
