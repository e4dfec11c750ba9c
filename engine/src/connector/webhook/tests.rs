//! Unit tests of webhook verification: each scheme as its vendor signs, and each bound.

use super::*;

const NOW: i64 = 1_700_000_000;

fn secrets() -> HashMap<String, Secret> {
    [("k".to_string(), Secret::new("whsec_test"))]
        .into_iter()
        .collect()
}

fn verifier(scheme: WebhookVerify) -> Verifier {
    Verifier::new(&scheme, &secrets(), None).expect("verifier")
}

fn req<'a>(headers: &'a [(String, String)], body: &'a [u8]) -> WebhookRequest<'a> {
    WebhookRequest {
        method: "POST",
        url: "https://hooks.example/webhooks/t/hubspot",
        headers,
        body,
    }
}

fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn sign(alg: hmac::Algorithm, msg: &[u8]) -> Vec<u8> {
    let key = hmac::Key::new(alg, b"whsec_test");
    hmac::sign(&key, msg).as_ref().to_vec()
}

fn b64(alg: hmac::Algorithm, msg: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(sign(alg, msg))
}

fn stripe() -> Verifier {
    verifier(WebhookVerify::Stripe {
        secret: "k".into(),
        tolerance_secs: 300,
    })
}

fn stripe_sig(t: i64, body: &[u8]) -> String {
    hex::encode(sign(
        hmac::HMAC_SHA256,
        &[format!("{t}.").as_bytes(), body].concat(),
    ))
}

#[test]
fn hmac_body_sha1_base64_like_callrail() {
    let v = verifier(WebhookVerify::HmacBody {
        header: "Signature".into(),
        algorithm: "sha1".into(),
        encoding: "base64".into(),
        secret: "k".into(),
    });
    let body = br#"{"call_id":"C1"}"#;
    let sig = b64(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, body);
    let h = headers(&[("signature", &sig)]);
    assert_eq!(v.verify(&req(&h, body), NOW), Ok(()));
    assert_eq!(v.verify(&req(&h, b"{}"), NOW), Err(Refusal::Mismatch));
    assert_eq!(
        v.verify(&req(&[], body), NOW),
        Err(Refusal::MissingHeader("Signature".into()))
    );
    let h = headers(&[("signature", "%%%")]);
    assert!(matches!(
        v.verify(&req(&h, body), NOW),
        Err(Refusal::Malformed { .. })
    ));
    let e = Verifier::new(
        &WebhookVerify::HmacBody {
            header: "Signature".into(),
            algorithm: "sha1".into(),
            encoding: "base64".into(),
            secret: "k".into(),
        },
        &HashMap::new(),
        None,
    )
    .map(|_| ());
    assert_eq!(e, Err(VerifierError::MissingSecret("k".into())));
}

#[test]
fn hmac_body_sha256_hex() {
    let v = verifier(WebhookVerify::HmacBody {
        header: "X-Sig".into(),
        algorithm: "sha256".into(),
        encoding: "hex".into(),
        secret: "k".into(),
    });
    let body = b"payload";
    let sig = hex::encode(sign(hmac::HMAC_SHA256, body));
    assert_eq!(
        v.verify(&req(&headers(&[("x-sig", &sig)]), body), NOW),
        Ok(())
    );
    // A truncated signature is a mismatch, not a prefix match.
    let short = &sig[..32];
    assert_eq!(
        v.verify(&req(&headers(&[("x-sig", short)]), body), NOW),
        Err(Refusal::Mismatch)
    );
}

#[test]
fn stripe_signature_and_replay_window() {
    let body = br#"{"type":"payment_intent.succeeded"}"#;
    let sig = stripe_sig(NOW, body);
    let h = headers(&[(
        "Stripe-Signature",
        &format!("t={NOW},v1=deadbeef,v0=00,v1={sig}"),
    )]);
    assert_eq!(stripe().verify(&req(&h, body), NOW + 100), Ok(()));
    assert_eq!(
        stripe().verify(&req(&h, body), NOW + 1000),
        Err(Refusal::Stale {
            t: NOW,
            tolerance: 300
        })
    );
    assert_eq!(
        stripe().verify(&req(&h, b"{}"), NOW),
        Err(Refusal::Mismatch)
    );
}

#[test]
fn stripe_candidates_are_capped_and_the_header_bounded() {
    let body = b"{}";
    let good = stripe_sig(NOW, body);
    let junk = "v1=".to_string() + &"0".repeat(64);
    // The good one as the last allowed candidate verifies.
    let mut parts = vec![format!("t={NOW}")];
    parts.extend(std::iter::repeat_n(junk.clone(), MAX_STRIPE_CANDIDATES - 1));
    parts.push(format!("v1={good}"));
    let h = headers(&[("stripe-signature", &parts.join(","))]);
    assert_eq!(stripe().verify(&req(&h, body), NOW), Ok(()));
    // One more candidate is refused before any HMAC.
    let mut parts = vec![format!("t={NOW}"), format!("v1={good}")];
    parts.extend(std::iter::repeat_n(junk.clone(), MAX_STRIPE_CANDIDATES));
    let h = headers(&[("stripe-signature", &parts.join(","))]);
    assert_eq!(
        stripe().verify(&req(&h, body), NOW),
        Err(Refusal::Malformed {
            header: "Stripe-Signature".into(),
            why: "too many v1 signatures"
        })
    );
    // Thousands of entries: refused unparsed.
    let huge = format!("t={NOW},") + &vec![junk; 5000].join(",");
    let h = headers(&[("stripe-signature", &huge)]);
    assert_eq!(
        stripe().verify(&req(&h, body), NOW),
        Err(Refusal::Malformed {
            header: "Stripe-Signature".into(),
            why: "too long"
        })
    );
    // A stale timestamp is refused whatever the candidates.
    let h = headers(&[("stripe-signature", &format!("t=1,v1={good}"))]);
    assert!(matches!(
        stripe().verify(&req(&h, body), NOW),
        Err(Refusal::Stale { .. })
    ));
    for bad in [
        "v1=00".to_string(),
        format!("t=-5,v1={good}"),
        format!("t= {NOW},v1={good}"),
        format!("t={NOW},t={NOW},v1={good}"),
    ] {
        let h = headers(&[("stripe-signature", &bad)]);
        assert!(
            matches!(
                stripe().verify(&req(&h, body), NOW),
                Err(Refusal::Malformed { .. })
            ),
            "{bad}"
        );
    }
}

#[test]
fn hubspot_v3_signs_method_public_url_body_and_timestamp() {
    let v = verifier(WebhookVerify::HubspotV3 {
        secret: "k".into(),
        tolerance_secs: 300,
    });
    let body = br#"[{"objectId":1}]"#;
    let ts = format!("{}", NOW * 1000 + 123);
    let msg = [
        b"POSThttps://hooks.example/webhooks/t/hubspot".as_slice(),
        body,
        ts.as_bytes(),
    ]
    .concat();
    let sig = b64(hmac::HMAC_SHA256, &msg);
    let h = headers(&[
        ("X-HubSpot-Signature-v3", &sig),
        ("X-HubSpot-Request-Timestamp", &ts),
    ]);
    assert_eq!(v.verify(&req(&h, body), NOW + 1), Ok(()));
    // The http:// URL the server sees behind a proxy is not what HubSpot signed.
    let mut r = req(&h, body);
    r.url = "http://hooks.example/webhooks/t/hubspot";
    assert_eq!(v.verify(&r, NOW), Err(Refusal::Mismatch));
    assert!(matches!(
        v.verify(&req(&h, body), NOW + 301),
        Err(Refusal::Stale { .. })
    ));
    // HubSpot decodes a listed set of escapes in the URI before signing.
    let msg = [
        b"POSThttps://hooks.example/w?a=b:c/d&e=%20".as_slice(),
        body,
        ts.as_bytes(),
    ]
    .concat();
    let sig = b64(hmac::HMAC_SHA256, &msg);
    let h = headers(&[
        ("X-HubSpot-Signature-v3", &sig),
        ("X-HubSpot-Request-Timestamp", &ts),
    ]);
    let mut r = req(&h, body);
    r.url = "https://hooks.example/w?a=b%3Ac%2fd&e=%20";
    assert_eq!(v.verify(&r, NOW), Ok(()));
}

#[test]
fn hubspot_uri_decodes_only_the_listed_escapes() {
    assert_eq!(hubspot_uri("https://h/p?q=1"), "https://h/p?q=1");
    assert_eq!(hubspot_uri("/a%3Ab%2Cc%20d%"), "/a:b,c%20d%");
    assert_eq!(hubspot_uri("/é%40ü%4"), "/é@ü%4");
    assert_eq!(hubspot_uri("%%3A%"), "%:%");
}

#[test]
fn zendesk_signature_outside_the_replay_window_is_refused() {
    let v = verifier(WebhookVerify::Zendesk {
        secret: "k".into(),
        tolerance_secs: 300,
    });
    let body = br#"{"ticket":1}"#;
    for ts in ["2023-11-14T22:13:20Z", "1700000000", "1700000000123"] {
        let sig = b64(hmac::HMAC_SHA256, &[ts.as_bytes(), body].concat());
        let h = headers(&[
            ("X-Zendesk-Webhook-Signature", &sig),
            ("X-Zendesk-Webhook-Signature-Timestamp", ts),
        ]);
        assert_eq!(v.verify(&req(&h, body), NOW + 10), Ok(()), "{ts}");
        assert_eq!(
            v.verify(&req(&h, body), NOW + 3600),
            Err(Refusal::Stale {
                t: NOW,
                tolerance: 300
            }),
            "{ts}"
        );
        assert_eq!(
            v.verify(&req(&h, b"{}"), NOW),
            Err(Refusal::Mismatch),
            "{ts}"
        );
    }
    let h = headers(&[
        ("X-Zendesk-Webhook-Signature", "AAAA"),
        ("X-Zendesk-Webhook-Signature-Timestamp", "yesterday"),
    ]);
    assert!(matches!(
        v.verify(&req(&h, body), NOW),
        Err(Refusal::Malformed { .. })
    ));
}

#[test]
fn an_empty_signing_secret_is_refused_when_built_and_when_used() {
    let empty: HashMap<String, Secret> = [("k".to_string(), Secret::new(""))].into_iter().collect();
    for scheme in [
        WebhookVerify::Stripe {
            secret: "k".into(),
            tolerance_secs: 300,
        },
        WebhookVerify::Zendesk {
            secret: "k".into(),
            tolerance_secs: 300,
        },
        WebhookVerify::HubspotV3 {
            secret: "k".into(),
            tolerance_secs: 300,
        },
        WebhookVerify::HmacBody {
            header: "S".into(),
            algorithm: "sha256".into(),
            encoding: "hex".into(),
            secret: "k".into(),
        },
    ] {
        let e = Verifier::new(&scheme, &empty, None).map(|_| ());
        assert_eq!(e, Err(VerifierError::EmptySecret("k".into())));
    }
    // A key made from an empty secret some other way is refused at use.
    let v = Verifier {
        check: Check::Stripe {
            key: Key {
                key: hmac::Key::new(hmac::HMAC_SHA256, b""),
                secret_len: 0,
            },
            tolerance: 300,
        },
        redactor: Redactor::default(),
    };
    let body = b"{}";
    let forged = hex::encode(hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, b""),
        &[format!("{NOW}.").as_bytes(), body].concat(),
    ));
    let h = headers(&[("stripe-signature", &format!("t={NOW},v1={forged}"))]);
    assert_eq!(v.verify(&req(&h, body), NOW), Err(Refusal::EmptySecret));
}

#[test]
fn every_refusal_tells_the_sender_one_code() {
    let all = [
        Refusal::MissingHeader("X".into()),
        Refusal::Malformed {
            header: "X".into(),
            why: "w",
        },
        Refusal::Stale { t: 1, tolerance: 2 },
        Refusal::Mismatch,
        Refusal::EmptySecret,
        Refusal::Plugin {
            plugin: "p".into(),
            reason: "r".into(),
        },
    ];
    for r in all {
        assert_eq!(r.code(), REFUSAL_CODE, "{r}");
    }
    let f = Refusal::PluginFailed {
        plugin: "p".into(),
        cause: "trap".into(),
    };
    assert_eq!(f.code(), UNAVAILABLE_CODE);
}

#[test]
fn plugin_text_is_redacted_for_the_log() {
    let granted = "plugin-granted-secret-42";
    let v = stripe().with_redactor(Redactor::new(["whsec_test", granted]));
    let reversed: String = granted.chars().rev().collect();
    let reason = format!(
        "bad: {granted} / {reversed} / {} / whsec_test",
        hex::encode(granted)
    );
    let logged = v.for_log(&reason);
    for leak in [granted, &reversed, &hex::encode(granted), "whsec_test"] {
        assert!(!logged.contains(leak), "{logged}");
    }
    assert!(logged.starts_with("bad: [redacted]"), "{logged}");
    // Long text is shortened after redaction.
    let long = format!("{}{granted}", "x".repeat(MAX_REASON_CHARS - 3));
    let logged = v.for_log(&long);
    assert!(!logged.contains("plugin-"), "{logged}");
    assert!(logged.chars().count() <= MAX_REASON_CHARS + 1);
}
