//! Durations in human form: `500ms`, `1.5s`, `75s`, `10m`, `2h`, `1h30m`; a
//! plain number is seconds.

/// Parses a duration into nanoseconds.
pub fn parse_duration(s: &str) -> Result<u64, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("empty duration".into());
    }
    if let Ok(v) = t.parse::<f64>() {
        return to_ns(v, 1e9, s);
    }
    let mut total: u64 = 0;
    let mut rest = t;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let unit_end = rest[num_end..]
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .map_or(rest.len(), |i| num_end + i);
        let (num, unit) = (&rest[..num_end], &rest[num_end..unit_end]);
        let v: f64 = num
            .parse()
            .map_err(|_| format!("'{s}' is not a duration (try 500ms, 75s, 2h)"))?;
        let scale = match unit {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" | "min" => 60e9,
            "h" => 3600e9,
            "d" => 86400e9,
            _ => return Err(format!("'{s}': unknown unit '{unit}' (use ms, s, m, h)")),
        };
        total = total
            .checked_add(to_ns(v, scale, s)?)
            .ok_or_else(|| format!("'{s}' is too long"))?;
        rest = &rest[unit_end..];
    }
    Ok(total)
}

fn to_ns(v: f64, scale: f64, s: &str) -> Result<u64, String> {
    let ns = v * scale;
    if !ns.is_finite() || ns < 0.0 || ns > u64::MAX as f64 {
        return Err(format!("'{s}' is not a usable duration"));
    }
    Ok(ns.round() as u64)
}

/// Short human form: `850ms`, `1.002s`, `75s`, `2h11m15s`.
pub fn format_duration(ns: u64) -> String {
    let ms = ns as f64 / 1e6;
    if ms < 1000.0 {
        return if ms < 10.0 {
            format!("{ms:.3}ms")
        } else {
            format!("{ms:.0}ms")
        };
    }
    let s = ns as f64 / 1e9;
    if s < 60.0 {
        let t = format!("{s:.3}");
        return format!("{}s", t.trim_end_matches('0').trim_end_matches('.'));
    }
    let whole = ns.saturating_add(500_000_000) / 1_000_000_000;
    let (h, m, sec) = (whole / 3600, whole / 60 % 60, whole % 60);
    let mut out = String::new();
    if h > 0 {
        out += &format!("{h}h");
    }
    if m > 0 {
        out += &format!("{m}m");
    }
    if sec > 0 || out.is_empty() {
        out += &format!("{sec}s");
    }
    out
}

/// "1 probe", "3 probes": a count and its noun, plural when it is not 1.
pub fn count(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_human_durations() {
        assert_eq!(parse_duration("500ms"), Ok(500_000_000));
        assert_eq!(parse_duration("75"), Ok(75_000_000_000));
        assert_eq!(parse_duration("1.5s"), Ok(1_500_000_000));
        assert_eq!(parse_duration("2h"), Ok(7_200_000_000_000));
        assert_eq!(parse_duration("1h30m"), Ok(5_400_000_000_000));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("-3s").is_err());
    }

    #[test]
    fn formats_durations() {
        assert_eq!(format_duration(7875 * 1_000_000_000), "2h11m15s");
        assert_eq!(format_duration(1_002_000_000), "1.002s");
        assert_eq!(format_duration(75_000_000_000), "1m15s");
        assert_eq!(format_duration(850_000_000), "850ms");
        assert_eq!(format_duration(5_000_000_000), "5s");
    }
}
