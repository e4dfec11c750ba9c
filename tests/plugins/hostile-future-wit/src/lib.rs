//! A mapping plugin built against `switchyard:plugin@9.0.0`, which the host does not support.

wit_bindgen::generate!({
    inline: r#"
        package switchyard:plugin@9.0.0;

        interface types {
            variant plugin-error {
                invalid-input(string),
                denied(string),
                upstream(string),
                internal(string),
            }
            type json = string;
        }

        interface mapping {
            use types.{json, plugin-error};
            functions: func() -> list<string>;
            call: func(name: string, args: list<json>) -> result<json, plugin-error>;
        }

        world mapping-functions {
            export mapping;
        }
    "#,
});

use exports::switchyard::plugin::mapping::{Guest, Json, PluginError};

struct Future;

impl Guest for Future {
    fn functions() -> Vec<String> {
        vec!["echo".into()]
    }

    fn call(_name: String, args: Vec<Json>) -> Result<Json, PluginError> {
        Ok(args.into_iter().next().unwrap_or_else(|| "null".into()))
    }
}

export!(Future);
