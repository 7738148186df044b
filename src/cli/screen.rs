//! The terminal `watch` redraws its table on: the alternate screen, left
//! (and the cursor shown again) however the watch ends, a panic included.

use crossterm::{cursor, queue, terminal};
use std::io::{self, Write};

/// While it lives, stdout is the alternate screen.
pub struct Screen(());

impl Screen {
    pub fn enter() -> io::Result<Screen> {
        let mut out = io::stdout();
        queue!(out, terminal::EnterAlternateScreen, cursor::Hide)?;
        out.flush()?;
        // A panic's message is printed before the unwinding drops the
        // screen: leave it first, or the message goes with the screen.
        // Only on the thread that draws: it holds stdout's lock, which
        // another thread's panic would wait for forever.
        static HOOKED: std::sync::Once = std::sync::Once::new();
        HOOKED.call_once(|| {
            let said = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                if ON_SCREEN.with(|on| on.replace(false)) {
                    leave();
                }
                said(info);
            }));
        });
        ON_SCREEN.with(|on| on.set(true));
        Ok(Screen(()))
    }

    /// Columns and rows (80 by 24 when the terminal does not say).
    pub fn size() -> (usize, usize) {
        match terminal::size() {
            Ok((w, h)) if w > 0 && h > 0 => (w as usize, h as usize),
            _ => (80, 24),
        }
    }

    /// Draws `lines` from the top, each over what was there, and clears the rest.
    pub fn draw(&self, out: &mut impl Write, lines: &[String]) -> io::Result<()> {
        queue!(out, cursor::MoveTo(0, 0))?;
        for (i, l) in lines.iter().enumerate() {
            if i > 0 {
                out.write_all(b"\r\n")?;
            }
            out.write_all(l.as_bytes())?;
            queue!(out, terminal::Clear(terminal::ClearType::UntilNewLine))?;
        }
        queue!(out, terminal::Clear(terminal::ClearType::FromCursorDown))?;
        out.flush()
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        ON_SCREEN.with(|on| on.set(false));
        leave();
    }
}

thread_local! {
    /// Whether this thread put the alternate screen up (the panic hook leaves it, once).
    static ON_SCREEN: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Back to the normal screen, the cursor shown.
fn leave() {
    let mut out = io::stdout();
    let _ = queue!(out, cursor::Show, terminal::LeaveAlternateScreen);
    let _ = out.flush();
}
