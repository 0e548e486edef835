//! The progress bar of long transfers, on stderr, only when stderr is a terminal.

/// A progress bar on stderr for long transfers, only when stderr is a terminal (and
/// not `quiet`): bytes and rate, plus percent and ETA when the total is known (a file
/// argument). Returns `None` otherwise, so nothing of it reaches a pipe or a log.
pub fn bar(total: Option<u64>, quiet: bool) -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    if quiet || !std::io::stderr().is_terminal() {
        return None;
    }
    let (bar, template) = match total {
        Some(n) => (
            indicatif::ProgressBar::new(n),
            "{bar:30} {percent:>3}% {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
        ),
        None => (
            indicatif::ProgressBar::no_length(),
            "{spinner} {bytes} {bytes_per_sec}",
        ),
    };
    if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar.set_draw_target(indicatif::ProgressDrawTarget::stderr_with_hz(4));
    Some(bar)
}
