//! Hides keys in text from the remote that is quoted back to the user (an
//! error message quoting what the remote printed, e.g. a proxy greeting of
//! another version): any `key=VALUE` loses its value, and so does any run
//! of 32 or more hex digits.

/// `text` with every `key=VALUE` and every long hex run replaced by `***`.
pub fn redact_keys(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = find_ci(rest, "key=") {
        out.push_str(&redact_hex(&rest[..i + 4]));
        out.push_str("***");
        let after = &rest[i + 4..];
        let end = after
            .find(|c: char| c.is_whitespace() || c == '"' || c == '\'')
            .unwrap_or(after.len());
        rest = &after[end..];
    }
    out.push_str(&redact_hex(rest));
    out
}

fn find_ci(hay: &str, needle: &str) -> Option<usize> {
    hay.as_bytes()
        .windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

/// Replaces runs of 32+ hex digits with `***`.
fn redact_hex(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    for c in text.chars() {
        if c.is_ascii_hexdigit() {
            run.push(c);
            continue;
        }
        flush(&mut run, &mut out);
        out.push(c);
    }
    flush(&mut run, &mut out);
    out
}

fn flush(run: &mut String, out: &mut String) {
    if run.len() >= 32 {
        out.push_str("***");
    } else {
        out.push_str(run);
    }
    run.clear();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_greeting_of_another_version_loses_its_key() {
        let key = "0123456789abcdef".repeat(4);
        let text = format!("Welcome!\nDISTANT-PROXY 2 key={key} x=1\nbye");
        let r = redact_keys(&text);
        assert!(!r.contains(&key), "{r}");
        assert_eq!(r, "Welcome!\nDISTANT-PROXY 2 key=*** x=1\nbye");
        // Another spelling, or a bare key.
        assert!(!redact_keys(&format!("KEY={key}")).contains(&key));
        assert!(!redact_keys(&format!("token {key} end")).contains(&key));
        assert_eq!(redact_keys("a short cafe"), "a short cafe");
        assert_eq!(redact_keys("ünïcode"), "ünïcode");
    }
}
