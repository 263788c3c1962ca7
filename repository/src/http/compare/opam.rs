//! Reading an `opam switch export --full --freeze` file (the `opam-switch`
//! artifact that orb writes) far enough for builder-web's comparison: the
//! `installed:` and `roots:` lists and the overlay `package "NAME" {…}`
//! blocks, with their fields as token trees. Not a full opam parser: values
//! are kept as nested lists of strings and words, which is all that
//! comparing two exports needs. `diff.rs` compares two of these.

use std::collections::BTreeMap;

/// A value as written in an opam file: strings, bare words (identifiers,
/// operators, numbers, booleans) and bracketed groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Val {
    Str(String),
    Word(String),
    /// `[…]`, `{…}` or `(…)`, by its opening character.
    Group(char, Vec<Val>),
}

/// One overlay block: the package's own opam file as the export carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overlay {
    /// Its fields in order, each with its value's tokens.
    pub fields: Vec<(String, Vec<Val>)>,
    /// The block's text, dedented, for a readable diff.
    pub text: String,
}

/// What the comparison reads from an export.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SwitchExport {
    /// `installed:` as (name, version), in file order.
    pub installed: Vec<(String, String)>,
    /// `roots:` as (name, version).
    pub roots: Vec<(String, String)>,
    /// Overlays by package name.
    pub overlays: BTreeMap<String, Overlay>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Str(String),
    Word(String),
    /// A word written `name:` (a field starts).
    Field(String),
    Open(char),
    Close(char),
}

/// Tokens with the byte offset where each starts and ends.
fn lex(s: &str) -> Vec<(Tok, usize, usize)> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let start = i;
        match c {
            _ if c.is_ascii_whitespace() => i += 1,
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'(' if b.get(i + 1) == Some(&b'*') => {
                let mut depth = 0usize;
                while i < b.len() {
                    if b[i..].starts_with(b"(*") {
                        depth += 1;
                        i += 2;
                    } else if b[i..].starts_with(b"*)") {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
            }
            b'"' if b[i..].starts_with(b"\"\"\"") => {
                let body = i + 3;
                let end = s[body..].find("\"\"\"").map_or(b.len(), |e| body + e);
                out.push((Tok::Str(s[body..end].to_owned()), start, (end + 3).min(b.len())));
                i = (end + 3).min(b.len());
            }
            b'"' => {
                let (text, end) = string_at(s, i + 1);
                out.push((Tok::Str(text), start, end));
                i = end;
            }
            b'[' | b'{' | b'(' => {
                out.push((Tok::Open(c as char), start, i + 1));
                i += 1;
            }
            b']' | b'}' | b')' => {
                out.push((Tok::Close(c as char), start, i + 1));
                i += 1;
            }
            _ => {
                while i < b.len() && !b[i].is_ascii_whitespace() && !b"[]{}()\"#".contains(&b[i]) {
                    i += 1;
                }
                let w = &s[start..i];
                let tok = match w.strip_suffix(':') {
                    Some(name) if !name.is_empty() && !name.contains(':') => Tok::Field(name.to_owned()),
                    _ => Tok::Word(w.to_owned()),
                };
                out.push((tok, start, i));
            }
        }
    }
    out
}

/// A `"…"` string starting after its quote: its text and the offset after
/// the closing quote.
fn string_at(s: &str, from: usize) -> (String, usize) {
    let mut text = String::new();
    let mut chars = s[from..].char_indices();
    while let Some((k, c)) = chars.next() {
        match c {
            '"' => return (text, from + k + 1),
            '\\' => match chars.next() {
                Some((_, 'n')) => text.push('\n'),
                Some((_, 't')) => text.push('\t'),
                Some((_, 'r')) => text.push('\r'),
                Some((_, 'b')) => text.push('\u{8}'),
                Some((_, '\n')) => {
                    // A line continuation: the next line's indentation goes too.
                    while chars.clone().next().is_some_and(|(_, c)| c == ' ' || c == '\t') {
                        chars.next();
                    }
                }
                Some((_, other)) => text.push(other),
                None => break,
            },
            c => text.push(c),
        }
    }
    (text, s.len())
}

/// Values from `toks[*i]` up to the next field, section or closing bracket
/// at this depth.
fn values(toks: &[(Tok, usize, usize)], i: &mut usize, until_section: bool) -> Vec<Val> {
    let mut out = Vec::new();
    while let Some((t, _, _)) = toks.get(*i) {
        match t {
            Tok::Field(_) | Tok::Close(_) if until_section => break,
            Tok::Close(_) => {
                *i += 1;
                break;
            }
            Tok::Word(_) if until_section && section_starts(toks, *i) => break,
            Tok::Str(s) => {
                out.push(Val::Str(s.clone()));
                *i += 1;
            }
            Tok::Word(w) | Tok::Field(w) => {
                out.push(Val::Word(w.clone()));
                *i += 1;
            }
            Tok::Open(c) => {
                *i += 1;
                out.push(Val::Group(*c, values(toks, i, false)));
            }
        }
    }
    out
}

/// `kind "name" {` or `kind {` at the top of an items list.
fn section_starts(toks: &[(Tok, usize, usize)], i: usize) -> bool {
    matches!(
        (toks.get(i + 1), toks.get(i + 2)),
        (Some((Tok::Open('{'), _, _)), _) | (Some((Tok::Str(_), _, _)), Some((Tok::Open('{'), _, _)))
    )
}

/// A section's items; `toks[*i]` is after its `{`. Returns the fields and
/// the offset of its closing `}`.
type Fields = Vec<(String, Vec<Val>)>;

fn items(
    toks: &[(Tok, usize, usize)],
    i: &mut usize,
    src: &str,
    top: bool,
    sections: &mut Vec<(String, String, Overlay)>,
) -> (Fields, usize) {
    let mut fields = Vec::new();
    while let Some((t, start, _)) = toks.get(*i) {
        match t {
            Tok::Close(_) if !top => {
                *i += 1;
                return (fields, *start);
            }
            Tok::Field(name) => {
                *i += 1;
                fields.push((name.clone(), values(toks, i, true)));
            }
            Tok::Word(kind) if section_starts(toks, *i) => {
                let name = match &toks[*i + 1].0 {
                    Tok::Str(s) => {
                        *i += 3;
                        s.clone()
                    }
                    _ => {
                        *i += 2;
                        String::new()
                    }
                };
                let body_start = toks[*i - 1].2;
                let mut inner = Vec::new();
                let (f, body_end) = items(toks, i, src, false, &mut inner);
                sections.push((
                    kind.clone(),
                    name,
                    Overlay {
                        fields: f,
                        text: dedent(&src[body_start..body_end.max(body_start)]),
                    },
                ));
            }
            // Stray tokens (a value we could not attach): skip.
            _ => *i += 1,
        }
    }
    (fields, src.len())
}

/// The block's lines without their common indentation and blank ends.
fn dedent(s: &str) -> String {
    let lines: Vec<&str> = s.lines().map(str::trim_end).collect();
    let indent = lines
        .iter()
        .filter(|l| !l.is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    let mut out = String::new();
    for l in lines.iter().skip_while(|l| l.is_empty()) {
        out.push_str(l.get(indent..).unwrap_or(""));
        out.push('\n');
    }
    while out.ends_with("\n\n") {
        out.pop();
    }
    out
}

/// `name.version` as opam splits it: at the first dot (names have none).
pub fn split_package(s: &str) -> (String, String) {
    match s.split_once('.') {
        Some((n, v)) => (n.to_owned(), v.to_owned()),
        None => (s.to_owned(), String::new()),
    }
}

fn package_list(vals: &[Val]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for v in vals {
        match v {
            Val::Str(s) => out.push(split_package(s)),
            Val::Group('[', inner) => out.extend(package_list(inner)),
            _ => {}
        }
    }
    out
}

impl SwitchExport {
    pub fn parse(src: &str) -> SwitchExport {
        let toks = lex(src);
        let mut sections = Vec::new();
        let mut i = 0;
        let (fields, _) = items(&toks, &mut i, src, true, &mut sections);
        let list = |name: &str| {
            fields
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| package_list(v))
                .unwrap_or_default()
        };
        SwitchExport {
            installed: list("installed"),
            roots: list("roots"),
            overlays: sections
                .into_iter()
                .filter(|(kind, name, _)| kind == "package" && !name.is_empty())
                .map(|(_, name, o)| (name, o))
                .collect(),
        }
    }
}

impl Overlay {
    pub fn field(&self, name: &str) -> Option<&[Val]> {
        self.fields.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_slice())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub const EXPORT: &str = r#"opam-version: "2.0"
compiler: ["ocaml-base-compiler.4.14.1"]
roots: ["tlstunnel.dev"]
installed: [
  "cstruct.6.2.0"
  "mirage.4.5.0" # a comment
  "tlstunnel.dev"
]
package "mirage" {
  opam-version: "2.0"
  synopsis: "The MirageOS library operating system"
  depends: [
    "ocaml" {>= "4.08.0"}
    "dune" {>= "2.9.0"}
  ]
  build: ["dune" "build" "-p" name "-j" jobs]
}
package "tlstunnel" {
  opam-version: "2.0"
  (* nested (* comments *) too *)
  description: """multi
line"""
  x-opam-monorepo-duniverse-dirs: [
    [
      "https://example.org/tls-1.0.0.tbz"
      "tls"
      ["sha256=aa" "sha512=bb"]
    ]
    ["git+https://example.org/x.git#abc" "x"]
  ]
}
"#;

    #[test]
    fn reads_installed_roots_and_overlays() {
        let e = SwitchExport::parse(EXPORT);
        assert_eq!(
            e.installed,
            [("cstruct", "6.2.0"), ("mirage", "4.5.0"), ("tlstunnel", "dev")]
                .map(|(n, v)| (n.to_owned(), v.to_owned()))
        );
        assert_eq!(e.roots, [("tlstunnel".to_owned(), "dev".to_owned())]);
        assert_eq!(e.overlays.keys().collect::<Vec<_>>(), ["mirage", "tlstunnel"]);
        let m = &e.overlays["mirage"];
        assert_eq!(
            m.field("synopsis"),
            Some(&[Val::Str("The MirageOS library operating system".into())][..])
        );
        assert!(m.text.starts_with("opam-version: \"2.0\"\nsynopsis:"), "{}", m.text);
        assert!(
            m.text
                .ends_with("build: [\"dune\" \"build\" \"-p\" name \"-j\" jobs]\n"),
            "{:?}",
            m.text
        );
        let t = &e.overlays["tlstunnel"];
        assert_eq!(t.field("description"), Some(&[Val::Str("multi\nline".into())][..]));
        let dirs = t.field("x-opam-monorepo-duniverse-dirs").unwrap();
        let Val::Group('[', entries) = &dirs[0] else {
            panic!("{dirs:?}")
        };
        assert_eq!(entries.len(), 2);
    }

    #[test]
    fn strings_keep_escapes_and_braces() {
        let e = SwitchExport::parse("installed: [\"a.1\" \"b.2\\\"}\"]\npackage \"a\" { x: \"}\" }\n");
        assert_eq!(e.installed[1], ("b".to_owned(), "2\"}".to_owned()));
        assert_eq!(e.overlays["a"].field("x"), Some(&[Val::Str("}".into())][..]));
    }

    #[test]
    fn garbage_gives_an_empty_export_not_a_panic() {
        for s in [
            "",
            "}}}",
            "installed: [",
            "package \"x\" {",
            "\"unterminated",
            "(* open",
            "[[[[",
            "a: b: c:",
        ] {
            let _ = SwitchExport::parse(s);
        }
    }
}
