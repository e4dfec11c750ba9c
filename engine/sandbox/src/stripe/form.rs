//! Stripe's form encoding with brackets (`metadata[k]=v`, `items[0][price]=p`,
//! `expand[]=customer`) decoded into nested JSON.

use serde_json::{Map, Value};

/// Decodes a form body or query string into nested JSON (all leaves are strings).
pub(super) fn decode_form(raw: &[u8]) -> Result<Map<String, Value>, String> {
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_bytes(raw).map_err(|e| format!("invalid form body: {e}"))?;
    let mut root = Value::Object(Map::new());
    for (key, value) in pairs {
        let (base, rest) = match key.find('[') {
            Some(i) => (&key[..i], &key[i..]),
            None => (key.as_str(), ""),
        };
        let mut path = vec![base.to_string()];
        let mut r = rest;
        while let Some(stripped) = r.strip_prefix('[') {
            let Some(end) = stripped.find(']') else {
                return Err(format!("invalid array or hash parameter `{key}`"));
            };
            path.push(stripped[..end].to_string());
            r = &stripped[end + 1..];
        }
        insert_path(&mut root, &path, value);
    }
    let root = arrays(root);
    Ok(match root {
        Value::Object(m) => m,
        _ => Map::new(),
    })
}

fn insert_path(node: &mut Value, path: &[String], value: String) {
    let Some((head, tail)) = path.split_first() else {
        return;
    };
    if !node.is_object() {
        *node = Value::Object(Map::new());
    }
    let Some(map) = node.as_object_mut() else {
        return;
    };
    let key = if head.is_empty() {
        // `expand[]=a&expand[]=b`: append under the next free index.
        map.len().to_string()
    } else {
        head.clone()
    };
    if tail.is_empty() {
        map.insert(key, Value::String(value));
    } else {
        let child = map.entry(key).or_insert_with(|| Value::Object(Map::new()));
        insert_path(child, tail, value);
    }
}

/// Turns objects keyed 0..n into arrays, recursively.
fn arrays(v: Value) -> Value {
    match v {
        Value::Object(m) => {
            let is_array = !m.is_empty() && (0..m.len()).all(|i| m.contains_key(&i.to_string()));
            if is_array {
                let mut m = m;
                Value::Array(
                    (0..m.len())
                        .map(|i| arrays(m.remove(&i.to_string()).unwrap_or(Value::Null)))
                        .collect(),
                )
            } else {
                Value::Object(m.into_iter().map(|(k, v)| (k, arrays(v))).collect())
            }
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bracketed_forms_nest() {
        let m = decode_form(b"amount=100&metadata[order]=6735&items[0][price]=p1&items[1][price]=p2&expand[]=customer&expand[]=latest_charge")
            .expect("decodes");
        assert_eq!(m["amount"], "100");
        assert_eq!(m["metadata"]["order"], "6735");
        assert_eq!(m["items"][1]["price"], "p2");
        assert_eq!(m["expand"], json!(["customer", "latest_charge"]));
    }
}
