//! The ladder diagrams of `ladder.rs` as one standalone SVG document: the
//! same steps as the text, one `<g class="step">` per arrow (with
//! `data-kind` and `data-frame`), coloured by kind. Plain string formatting;
//! every text is escaped.

use super::ladder::{Ladder, Step};
use crate::analyze::Kind;
use std::fmt::Write as _;

const X_TIME: f64 = 12.0;
const X_LEFT: f64 = 150.0;
const X_RIGHT: f64 = 560.0;
const X_TEXT: f64 = 580.0;
const MIN_WIDTH: f64 = 900.0;
const ROW: f64 = 30.0;
const GAP_ROW: f64 = 22.0;
const HEAD: f64 = 56.0;

/// Escapes text for XML content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Control characters are not allowed in XML 1.0.
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\t') => out.push('?'),
            c => out.push(c),
        }
    }
    out
}

fn color(kind: Kind) -> &'static str {
    match kind {
        Kind::KeepaliveProbe => "#0b7fa6",
        Kind::KeepaliveAck => "#23884a",
        Kind::KeepaliveRst | Kind::KeepaliveAbort | Kind::Rst => "#c0392b",
        Kind::ZeroWindowProbe | Kind::ZeroWindowAck | Kind::Retransmission => "#c47f00",
        _ => "#6b6b6b",
    }
}

fn height(l: &Ladder) -> f64 {
    let gaps = gaps(l).iter().filter(|g| g.is_some()).count() + (l.skipped_after > 0) as usize;
    HEAD + l.steps.len() as f64 * ROW + gaps as f64 * GAP_ROW + 16.0
}

/// The gap text shown before each step (segments left out, or a long silence), as in the text.
fn gaps(l: &Ladder) -> Vec<Option<String>> {
    let mut prev: Option<u64> = None;
    l.steps
        .iter()
        .map(|st| {
            let g = if st.skipped_before > 0 {
                Some(format!("{} segments not shown", st.skipped_before))
            } else {
                prev.and_then(|p| {
                    let quiet = st.time_ns.saturating_sub(p);
                    (quiet >= 1_000_000_000).then(|| format!("{} quiet", crate::units::format_duration(quiet)))
                })
            };
            prev = Some(st.time_ns);
            g
        })
        .collect()
}

/// Wide enough for the longest detail and note (monospace, about 7.4 px a character), and the titles.
fn width(ladders: &[Ladder]) -> f64 {
    let chars = |s: &str| s.chars().count() as f64;
    let text = ladders
        .iter()
        .flat_map(|l| &l.steps)
        .map(|st| X_TEXT + 7.4 * (chars(&st.detail()) + 2.0 + chars(&st.note)))
        .fold(0.0, f64::max);
    let titles = ladders
        .iter()
        .map(|l| X_TIME + 8.0 * chars(&l.title))
        .fold(0.0, f64::max);
    (text.max(titles) + 24.0).max(MIN_WIDTH).ceil()
}

/// Renders the ladders, one under the other, as an SVG document.
pub fn render(ladders: &[Ladder]) -> String {
    let total: f64 = ladders.iter().map(height).sum::<f64>() + 20.0;
    let w = width(ladders);
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{total}" viewBox="0 0 {w} {total}" font-family="DejaVu Sans Mono, Menlo, Consolas, monospace" font-size="12">
<rect x="0" y="0" width="{w}" height="{total}" fill="white"/>"#
    );
    let mut y = 10.0;
    for l in ladders {
        ladder(&mut s, l, y);
        y += height(l);
    }
    s.push_str("</svg>\n");
    s
}

fn ladder(s: &mut String, l: &Ladder, top: f64) {
    let h = height(l);
    let _ = writeln!(s, r#"<g class="ladder" transform="translate(0,{top})">"#);
    let _ = writeln!(
        s,
        r#"<text class="title" x="{X_TIME}" y="16" font-weight="bold" font-size="13">{}</text>"#,
        escape(&l.title)
    );
    let _ = writeln!(
        s,
        r#"<text class="end" x="{X_LEFT}" y="38" text-anchor="middle" font-weight="bold">{}</text>"#,
        escape(&l.left)
    );
    let _ = writeln!(
        s,
        r#"<text class="end" x="{X_RIGHT}" y="38" text-anchor="middle" font-weight="bold">{}</text>"#,
        escape(&l.right)
    );
    for x in [X_LEFT, X_RIGHT] {
        let _ = writeln!(
            s,
            r##"<line x1="{x}" y1="{}" x2="{x}" y2="{}" stroke="#333" stroke-width="1.5"/>"##,
            HEAD - 10.0,
            h - 10.0
        );
    }
    let mut y = HEAD;
    for (st, gap) in l.steps.iter().zip(gaps(l)) {
        if let Some(g) = gap {
            gap_text(s, y, &g);
            y += GAP_ROW;
        }
        step(s, st, y);
        y += ROW;
    }
    if l.skipped_after > 0 {
        gap_text(s, y, &format!("{} segments not shown", l.skipped_after));
    }
    s.push_str("</g>\n");
}

fn gap_text(s: &mut String, y: f64, text: &str) {
    let _ = writeln!(
        s,
        r##"<text class="gap" x="{}" y="{}" text-anchor="middle" fill="#888" font-style="italic">⋮ {} ⋮</text>"##,
        (X_LEFT + X_RIGHT) / 2.0,
        y + 12.0,
        escape(text)
    );
}

fn step(s: &mut String, st: &Step, y: f64) {
    let c = color(st.kind);
    let ay = y + 18.0;
    let (x1, x2) = if st.rightward {
        (X_LEFT, X_RIGHT)
    } else {
        (X_RIGHT, X_LEFT)
    };
    let _ = writeln!(
        s,
        r#"<g class="step" data-kind="{}" data-frame="{}"{}>"#,
        st.label(),
        st.frame,
        if st.unanswered {
            r#" data-unanswered="true""#
        } else {
            ""
        }
    );
    let _ = writeln!(
        s,
        "<title>frame {}: {} {}{}</title>",
        st.frame,
        st.label(),
        escape(&st.detail()),
        if st.note.is_empty() {
            String::new()
        } else {
            format!(" — {}", escape(&st.note))
        }
    );
    let _ = writeln!(
        s,
        r##"<text class="time" x="{X_TIME}" y="{ay}" dominant-baseline="middle" fill="#333">+{:.3}s</text>"##,
        st.time_ns as f64 / 1e9
    );
    let dir = if x2 > x1 { 1.0 } else { -1.0 };
    if st.unanswered {
        let end = x1 + (x2 - x1) * 0.72;
        let _ = writeln!(
            s,
            r#"<line x1="{x1}" y1="{ay}" x2="{end}" y2="{ay}" stroke="{c}" stroke-width="2" stroke-dasharray="6 3"/>"#
        );
        let _ = writeln!(
            s,
            r#"<path d="M {} {} L {} {} M {} {} L {} {}" stroke="{c}" stroke-width="2.5"/>"#,
            end - 5.0,
            ay - 5.0,
            end + 5.0,
            ay + 5.0,
            end - 5.0,
            ay + 5.0,
            end + 5.0,
            ay - 5.0
        );
    } else {
        let tip = x2 - dir * 1.0;
        let _ = writeln!(
            s,
            r#"<line x1="{x1}" y1="{ay}" x2="{}" y2="{ay}" stroke="{c}" stroke-width="2"/>"#,
            tip - dir * 8.0
        );
        let _ = writeln!(
            s,
            r#"<polygon points="{tip},{ay} {},{} {},{}" fill="{c}"/>"#,
            tip - dir * 10.0,
            ay - 5.0,
            tip - dir * 10.0,
            ay + 5.0
        );
    }
    let _ = writeln!(
        s,
        r#"<text class="label" x="{}" y="{}" text-anchor="middle" fill="{c}" font-weight="bold">{}</text>"#,
        (X_LEFT + X_RIGHT) / 2.0,
        ay - 6.0,
        st.label()
    );
    let _ = writeln!(
        s,
        r##"<text class="detail" x="{X_TEXT}" y="{ay}" dominant-baseline="middle" fill="#222">{}<tspan class="note" fill="#666">{}</tspan></text>"##,
        escape(&st.detail()),
        if st.note.is_empty() {
            String::new()
        } else {
            format!("  {}", escape(&st.note))
        }
    );
    s.push_str("</g>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(escape(r#"<a & "b">'"#), "&lt;a &amp; &quot;b&quot;&gt;&apos;");
        assert_eq!(escape("x\u{1}y"), "x?y");
    }
}
