//! Identity joins across systems: normalised identifiers (email, phone, customer id) and a
//! union–find that makes every record sharing an identifier, directly or through a chain of
//! records, the same person.

use std::collections::HashMap;

/// Normalise an email with the engine's one email normaliser (trimmed, lowercased; `None`
/// unless `local@domain`), so identity joins agree with duplicate detection and expressions.
pub fn normalize_email(raw: &str) -> Option<String> {
    crate::expr::functions::normalize_email::normalize(raw)
}

/// Normalise a phone number to E.164 (`+14155550123`), reading numbers without a country
/// prefix in `region`; when the number cannot be parsed, its digits (with a leading `+` kept).
/// `None` when it has fewer than 5 digits.
pub fn normalize_phone(raw: &str, region: Option<phonenumber::country::Id>) -> Option<String> {
    let digits: String = raw.chars().filter(char::is_ascii_digit).collect();
    if digits.len() < 5 {
        return None;
    }
    if let Some(n) = crate::expr::functions::normalize_phone::e164(raw, region) {
        return Some(n);
    }
    Some(if raw.trim_start().starts_with('+') {
        format!("+{digits}")
    } else {
        digits
    })
}

/// Normalise a customer id: trimmed; `None` when empty.
pub fn normalize_customer_id(raw: &str) -> Option<String> {
    let c = raw.trim();
    (!c.is_empty()).then(|| c.to_string())
}

/// Union–find over records and identifiers.
#[derive(Debug, Default)]
pub struct IdentityGraph {
    parent: Vec<usize>,
    keys: HashMap<String, usize>,
}

impl IdentityGraph {
    /// A new node (one per record).
    pub fn node(&mut self) -> usize {
        self.parent.push(self.parent.len());
        self.parent.len() - 1
    }

    /// Join a node with an identifier such as `email:ana@example.com`.
    pub fn link(&mut self, node: usize, key: String) {
        let k = match self.keys.get(&key) {
            Some(&k) => k,
            None => {
                let k = self.node();
                self.keys.insert(key, k);
                k
            }
        };
        self.union(node, k);
    }

    /// The representative of a node's person.
    pub fn find(&mut self, mut x: usize) -> usize {
        while self.parent[x] != x {
            self.parent[x] = self.parent[self.parent[x]];
            x = self.parent[x];
        }
        x
    }

    fn union(&mut self, a: usize, b: usize) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            // Keep the smaller id as root so person ids follow input order.
            let (lo, hi) = if ra < rb { (ra, rb) } else { (rb, ra) };
            self.parent[hi] = lo;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_and_phones_normalise() {
        assert_eq!(
            normalize_email("  Ana@Example.COM "),
            Some("ana@example.com".into())
        );
        assert_eq!(normalize_email("nobody"), None);
        let us = "US".parse().ok();
        assert_eq!(
            normalize_phone("(415) 555-0123", us),
            Some("+14155550123".into())
        );
        assert_eq!(
            normalize_phone("+1 415 555 0123", us),
            Some("+14155550123".into())
        );
        assert_eq!(normalize_phone("12", us), None);
    }

    #[test]
    fn records_join_through_a_chain_of_identifiers() {
        let mut g = IdentityGraph::default();
        let (a, b, c, d) = (g.node(), g.node(), g.node(), g.node());
        g.link(a, "email:ana@example.com".into());
        g.link(b, "email:ana@example.com".into());
        g.link(b, "customer:cus_1".into());
        g.link(c, "customer:cus_1".into());
        g.link(d, "email:bob@example.com".into());
        let p = g.find(a);
        assert_eq!(g.find(c), p);
        assert_ne!(g.find(d), p);
    }
}
