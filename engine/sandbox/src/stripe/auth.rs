//! Stripe's credentials: the secret key as a bearer token or as the Basic user name, with
//! Stripe's 401 bodies (the key's last four characters only).

use super::super::state::Shared;
use super::super::util::{basic, bearer};
use super::errors::invalid;
use axum::http::HeaderMap;
use axum::response::Response;

pub(super) fn authorize(shared: &Shared, headers: &HeaderMap) -> Result<(), Response> {
    let key = bearer(headers)
        .map(String::from)
        .or_else(|| basic(headers).map(|(u, _)| u));
    match key {
        Some(k) if k == shared.cred("secret_key") => Ok(()),
        Some(k) => {
            let tail: String = k
                .chars()
                .rev()
                .take(4)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            Err(invalid(
                401,
                None,
                &format!("Invalid API Key provided: sk_test_********************{tail}"),
                None,
            ))
        }
        None => Err(invalid(
            401,
            None,
            "You did not provide an API key. You need to provide your API key in the Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication for details, or we can help at https://support.stripe.com/.",
            None,
        )),
    }
}
