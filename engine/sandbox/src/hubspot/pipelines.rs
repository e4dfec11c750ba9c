//! HubSpot's deal pipelines as writes see them: a new portal's one deal pipeline, `default`,
//! with its stages; a deal's `pipeline` must be a pipeline and its `dealstage` a stage of it
//! (of `default` when the write names no pipeline), as HubSpot checks them.

use super::errors::WriteError;
use serde_json::{Map, Value, json};

/// (pipeline id, its stage ids) of a new portal's deal pipelines.
const DEALS: &[(&str, &[&str])] = &[(
    "default",
    &[
        "appointmentscheduled",
        "qualifiedtobuy",
        "presentationscheduled",
        "decisionmakerboughtin",
        "contractsent",
        "closedwon",
        "closedlost",
    ],
)];

fn invalid(name: &str, value: &str, allowed: &[&str]) -> WriteError {
    let message = format!(
        "{value} was not one of the allowed options: [{}]",
        allowed.join(", ")
    );
    WriteError::new(
        400,
        "VALIDATION_ERROR",
        format!(
            "Property values were not valid: {}",
            json!([{"isValid": false, "message": message, "error": "INVALID_OPTION",
                    "name": name, "localizedErrorMessage": message}])
        ),
        Value::Null,
    )
}

/// Checks a deal write's `pipeline` and `dealstage` (other objects pass).
pub(super) fn check(object: &str, props: &Map<String, Value>) -> Result<(), WriteError> {
    if object != "deals" {
        return Ok(());
    }
    let text = |k: &str| {
        props
            .get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let pipeline = text("pipeline");
    let stages = match pipeline {
        Some(p) => match DEALS.iter().find(|(id, _)| *id == p) {
            Some((_, s)) => *s,
            None => {
                let ids: Vec<&str> = DEALS.iter().map(|(id, _)| *id).collect();
                return Err(invalid("pipeline", p, &ids));
            }
        },
        None => DEALS[0].1,
    };
    if let Some(s) = text("dealstage")
        && !stages.contains(&s)
    {
        return Err(invalid("dealstage", s, stages));
    }
    Ok(())
}
