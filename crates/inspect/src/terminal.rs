//! The terminal while `--watch` draws on it: the alternate screen (so the pane's
//! scrollback keeps what was there before, not a copy per refresh), raw mode for
//! single keys (`q`), and a redraw that positions the cursor and rewrites only the
//! lines that changed, never clearing the screen.
//!
//! Whatever ends the view puts the terminal back as it was: [`Screen`]'s `Drop`
//! (a normal quit, Ctrl-C, an error returned with `?`) and a panic hook (a panic's
//! message is printed after the terminal is restored, where it can be read).
//! SIGKILL cannot be caught; `reset` (or `tput rmcup; stty sane`) repairs a pane
//! then.
//!
//! Raw mode turns Ctrl-C into a key: it is read as one, like `q`. SIGINT, SIGTERM
//! and SIGHUP from elsewhere reach the caller's cancel flag (`shm_cli::signals`).
//! Keys are read from `/dev/tty` (the controlling terminal, whatever stdin is)
//! with `poll(2)`; the end of that input (the terminal hung up: a closed pane)
//! quits too.

use crate::board::{Line, Tone};
use crossterm::cursor::{Hide, MoveTo, Show};
use crossterm::style::{Attribute, Color, Print, ResetColor, SetAttribute, SetForegroundColor};
use crossterm::terminal::{
    self, BeginSynchronizedUpdate, Clear, ClearType, EndSynchronizedUpdate, EnterAlternateScreen,
    LeaveAlternateScreen,
};
use crossterm::{execute, queue};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::sync::Once;
use std::time::Duration;

/// What the user did while we waited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// Nothing: time to look again.
    Nothing,
    /// `q`, `Q`, Esc, Ctrl-C or Ctrl-D, or the terminal is gone.
    Quit,
}

/// The terminal, on the alternate screen until dropped.
#[derive(Debug)]
pub struct Screen {
    out: io::Stdout,
    /// The terminal to read keys from, when raw mode could be set on it; without
    /// it only signals end the view.
    keys: Option<std::fs::File>,
    /// What each row shows now, to redraw only what changed.
    shown: Vec<Option<Line>>,
}

impl Screen {
    /// Enters the alternate screen, hides the cursor and sets raw mode.
    pub fn open() -> io::Result<Screen> {
        install_panic_hook();
        let keys = std::fs::File::open("/dev/tty")
            .ok()
            .filter(|_| terminal::enable_raw_mode().is_ok());
        let mut out = io::stdout();
        if let Err(e) = execute!(out, EnterAlternateScreen, Hide, Clear(ClearType::All)) {
            restore();
            return Err(e);
        }
        Ok(Screen {
            out,
            keys,
            shown: Vec::new(),
        })
    }

    /// Columns and rows.
    pub fn size(&self) -> io::Result<(usize, usize)> {
        let (c, r) = terminal::size()?;
        Ok((usize::from(c), usize::from(r)))
    }

    /// Draws `lines` from the top, one per row, over `rows` rows of `cols` columns
    /// (`lines` fit them: [`crate::board`] sees to it): a row whose line
    /// is unchanged is not touched, the others are rewritten and cleared to their
    /// end. `full` redraws every row (after a resize). One write per frame, inside a
    /// synchronized update where the terminal supports it (no tearing).
    pub fn draw(&mut self, lines: &[Line], cols: usize, rows: usize, full: bool) -> io::Result<()> {
        if full || self.shown.len() != rows {
            self.shown = vec![None; rows];
        }
        let changed: Vec<usize> = (0..rows)
            .filter(|&y| full || self.shown[y].as_ref() != lines.get(y))
            .collect();
        if changed.is_empty() {
            return Ok(());
        }
        // Built whole, then written at once: one write(2) per frame.
        let mut buf = Vec::with_capacity(4096);
        queue!(buf, BeginSynchronizedUpdate)?;
        for y in changed {
            let want = lines.get(y);
            let row = u16::try_from(y).unwrap_or(u16::MAX);
            queue!(buf, MoveTo(0, row))?;
            match want {
                Some(line) => {
                    // Each row starts and ends with plain attributes; a change of
                    // tone is one reset and the new style.
                    let mut tone = Tone::Plain;
                    for s in &line.spans {
                        if s.tone != tone {
                            style(&mut buf, s.tone)?;
                            tone = s.tone;
                        }
                        queue!(buf, Print(&s.text))?;
                    }
                    if tone != Tone::Plain {
                        style(&mut buf, Tone::Plain)?;
                    }
                    // A line as wide as the terminal leaves the cursor in the last
                    // column, where clearing would erase that column's character:
                    // such a line needs no clearing anyway.
                    if line.width() < cols {
                        queue!(buf, Clear(ClearType::UntilNewLine))?;
                    }
                }
                None => queue!(buf, Clear(ClearType::CurrentLine))?,
            }
            self.shown[y] = want.cloned();
        }
        queue!(buf, EndSynchronizedUpdate)?;
        self.out.write_all(&buf)?;
        self.out.flush()
    }

    /// Waits up to `timeout` for a key.
    pub fn wait(&mut self, timeout: Duration) -> io::Result<Input> {
        let Some(tty) = &mut self.keys else {
            std::thread::sleep(timeout);
            return Ok(Input::Nothing);
        };
        let ms = PollTimeout::try_from(timeout).unwrap_or(PollTimeout::MAX);
        let mut fds = [PollFd::new(tty.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, ms) {
            Ok(0) => return Ok(Input::Nothing),
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => return Ok(Input::Nothing),
            Err(e) => return Err(e.into()),
        }
        // Readable, or hung up (POLLHUP): read says which. In raw mode a read
        // returns what was typed so far, without waiting for a newline.
        let mut buf = [0u8; 64];
        let n = match tty.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(Input::Nothing),
            // EIO: the terminal hung up.
            Err(_) => 0,
        };
        Ok(quits(&buf[..n]))
    }
}

/// Whether what was typed quits: `q`, `Q`, Ctrl-C, Ctrl-D, a lone Esc (not the start
/// of an arrow key's sequence), or nothing at all (end of input: hung up).
fn quits(typed: &[u8]) -> Input {
    let quit = typed.is_empty()
        || typed == [0x1b]
        || typed.iter().any(|b| matches!(b, b'q' | b'Q' | 0x03 | 0x04));
    if quit {
        Input::Quit
    } else {
        Input::Nothing
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        restore();
    }
}

/// Back to the normal screen, cursor shown, raw mode off. Errors are ignored: this
/// runs on the way out (drop, panic), where nothing better can be done, and each
/// step is harmless when it was not needed.
fn restore() {
    let mut out = io::stdout();
    let _ = execute!(
        out,
        SetAttribute(Attribute::Reset),
        ResetColor,
        Show,
        LeaveAlternateScreen
    );
    let _ = terminal::disable_raw_mode();
}

/// Restores the terminal before the default hook prints a panic's message.
fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            previous(info);
        }));
    });
}

fn style(out: &mut impl Write, tone: Tone) -> io::Result<()> {
    queue!(out, SetAttribute(Attribute::Reset), ResetColor)?;
    match tone {
        Tone::Plain => Ok(()),
        Tone::Strong => queue!(out, SetAttribute(Attribute::Bold)),
        Tone::Good => queue!(out, SetForegroundColor(Color::Green)),
        Tone::Warn => queue!(out, SetForegroundColor(Color::Yellow)),
        Tone::Bad => queue!(
            out,
            SetForegroundColor(Color::Red),
            SetAttribute(Attribute::Bold)
        ),
        Tone::Dim => queue!(out, SetAttribute(Attribute::Dim)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_that_quit() {
        for k in [&b"q"[..], b"Q", b"\x03", b"\x04", b"\x1b", b"", b"xq"] {
            assert_eq!(quits(k), Input::Quit, "{k:?}");
        }
        for k in [&b"x"[..], b"\x1b[A", b" "] {
            assert_eq!(quits(k), Input::Nothing, "{k:?}");
        }
    }
}
