//! Checks a JSON answer against a fixture of builder-web's documented
//! shape (`tests/fixtures/builder-web/`): the same field names with values
//! of the same JSON types, recursively. Extra fields in the answer are
//! ours and allowed; a missing field or another type is an error. Arrays in
//! a fixture list variants (a job with a `latest`, one without): every
//! element of the answer must fit one variant, and every variant must be
//! met by some element, so the test data has to show each case. Objects
//! whose keys are data, not field names (builder-web's `jobs_by_section`),
//! are named in `dynamic` by path.

use serde_json::Value;

/// The fixture `name` (a file of `tests/fixtures/builder-web/`).
pub fn fixture(name: &str) -> Value {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/builder-web")
        .join(name);
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", p.display()))
}

/// Panics with every difference (and both documents) unless `actual` has
/// the shape of `fixture`.
pub fn assert_conforms(fixture: &Value, actual: &Value, dynamic: &[&str]) {
    let mut errs = Vec::new();
    check(fixture, actual, "$", dynamic, &mut errs);
    assert!(
        errs.is_empty(),
        "the answer does not have builder-web's shape:\n  {}\nfixture: {fixture}\nanswer:  {actual}",
        errs.join("\n  ")
    );
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn fits(f: &Value, a: &Value, path: &str, dynamic: &[&str]) -> bool {
    let mut e = Vec::new();
    check(f, a, path, dynamic, &mut e);
    e.is_empty()
}

fn variants(fs: &[&Value], actual: &[&Value], path: &str, dynamic: &[&str], errs: &mut Vec<String>) {
    if fs.is_empty() {
        return;
    }
    for (i, a) in actual.iter().enumerate() {
        if !fs.iter().any(|f| fits(f, a, path, dynamic)) {
            // Show why it misses the closest (first) variant.
            let mut why = Vec::new();
            check(fs[0], a, &format!("{path}[{i}]"), dynamic, &mut why);
            errs.push(format!("{path}[{i}] fits no fixture variant: {}", why.join("; ")));
        }
    }
    for (k, f) in fs.iter().enumerate() {
        if !actual.iter().any(|a| fits(f, a, path, dynamic)) {
            errs.push(format!(
                "{path}: no element shows fixture variant {k} ({f}); the test data must cover it"
            ));
        }
    }
}

fn check(f: &Value, a: &Value, path: &str, dynamic: &[&str], errs: &mut Vec<String>) {
    match (f, a) {
        (Value::Object(fo), Value::Object(ao)) if dynamic.contains(&path) => {
            let fs: Vec<&Value> = fo.values().collect();
            let fs: Vec<&Value> = fs.iter().flat_map(|v| v.as_array().into_iter().flatten()).collect();
            for (k, av) in ao {
                let Some(list) = av.as_array() else {
                    errs.push(format!("{path}.{k}: expected an array, got {}", kind(av)));
                    continue;
                };
                let list: Vec<&Value> = list.iter().collect();
                let mut e = Vec::new();
                // Each section's elements fit the union of the fixture's.
                variants(&fs, &list, &format!("{path}.{k}"), dynamic, &mut e);
                errs.extend(e.into_iter().filter(|m| !m.contains("must cover")));
            }
        }
        (Value::Object(fo), Value::Object(ao)) => {
            for (k, fv) in fo {
                match ao.get(k) {
                    None => errs.push(format!("{path}.{k} is missing")),
                    Some(av) => check(fv, av, &format!("{path}.{k}"), dynamic, errs),
                }
            }
        }
        (Value::Array(fa), Value::Array(aa)) => {
            let fs: Vec<&Value> = fa.iter().collect();
            let aa: Vec<&Value> = aa.iter().collect();
            variants(&fs, &aa, path, dynamic, errs);
        }
        _ if kind(f) == kind(a) => {}
        _ => errs.push(format!(
            "{path}: builder-web sends {}, the answer has {} ({a})",
            kind(f),
            kind(a)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ok(f: Value, a: Value) -> bool {
        let mut e = Vec::new();
        check(&f, &a, "$", &["$.s"], &mut e);
        e.is_empty()
    }

    #[test]
    fn types_fields_and_variants() {
        assert!(ok(json!({"a": 1, "b": "x"}), json!({"a": 2, "b": "y", "ours": true})));
        assert!(
            !ok(json!({"a": 1}), json!({"a": 1.5})),
            "an integer must stay an integer"
        );
        assert!(!ok(json!({"a": 1}), json!({})), "missing field");
        assert!(!ok(json!({"a": null}), json!({"a": "x"})));
        let f = json!({"l": [{"m": {"n": 1}}, {"m": null}]});
        assert!(ok(f.clone(), json!({"l": [{"m": null}, {"m": {"n": 3}}]})));
        assert!(
            !ok(f.clone(), json!({"l": [{"m": {"n": 3}}]})),
            "variant m:null not shown"
        );
        assert!(
            !ok(f, json!({"l": [{"m": 1}, {"m": null}, {"m": {"n": 1}}]})),
            "m:1 fits nothing"
        );
        assert!(ok(
            json!({"s": {"A": [{"x": 1}], "B": [{"y": "z"}]}}),
            json!({"s": {"Other": [{"y": "q"}]}})
        ));
        assert!(!ok(
            json!({"s": {"A": [{"x": 1}]}}),
            json!({"s": {"Other": [{"x": "q"}]}})
        ));
    }
}
