//! Output: results go to stdout one per line through [`out`] (a closed pipe
//! is an error to return, not a panic); text that came from the other side
//! of a connection goes to people through [`escaped`], so a server cannot
//! send escape sequences to an operator's terminal or forge log lines.

use std::fmt;

/// Writes one line of results to stdout. Unlike `println!`, a closed pipe
/// (`tool | head -1`) is an error the caller returns, which
/// [`crate::exit::main_with`] turns into exit 0, instead of a panic.
pub fn out(line: impl fmt::Display) -> std::io::Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}")?;
    stdout.flush()
}

/// `text` with control characters (escape sequences, carriage returns,
/// newlines, DEL, C1 controls) shown as `\u{..}`-style escapes.
pub fn escaped(text: &str) -> Escaped<'_> {
    Escaped(text)
}

pub struct Escaped<'a>(&'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            if c.is_control() {
                match c {
                    '\n' => f.write_str("\\n")?,
                    '\r' => f.write_str("\\r")?,
                    '\t' => f.write_str("\\t")?,
                    _ => write!(f, "\\u{{{:x}}}", c as u32)?,
                }
            } else {
                fmt::Write::write_char(f, c)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn control_characters_are_escaped_and_the_rest_kept() {
        let s = super::escaped("ok \u{1b}[31mred\u{7}\r\nnext é").to_string();
        assert_eq!(s, "ok \\u{1b}[31mred\\u{7}\\r\\nnext é");
        assert!(!s.chars().any(char::is_control));
    }
}
