//! Reads what a component imports and exports (before linking), which `switchyard:plugin`
//! version it was built against and which worlds it implements.

use super::{WIT_PACKAGE, WIT_VERSION};
use crate::spec::plugin::PluginWorld;
use wasmtime::Engine;
use wasmtime::component::Component;
use wasmtime::component::types::ComponentItem;

/// What a component imports and exports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspection {
    /// Imported instances (or functions) with their function names.
    pub imports: Vec<(String, Vec<String>)>,
    /// Exported instances (or functions) with their function names.
    pub exports: Vec<(String, Vec<String>)>,
    /// Versions of `switchyard:plugin` named by imports and exports.
    pub wit_versions: Vec<String>,
    /// Worlds whose exports are all present.
    pub worlds: Vec<PluginWorld>,
}

/// A parsed interface name `ns:pkg/iface@version`.
pub(crate) struct IfaceName<'a> {
    pub(crate) package: &'a str,
    pub(crate) interface: &'a str,
    pub(crate) version: Option<&'a str>,
}

pub(crate) fn parse_name(name: &str) -> Option<IfaceName<'_>> {
    let (path, version) = match name.split_once('@') {
        Some((p, v)) => (p, Some(v)),
        None => (name, None),
    };
    let (package, interface) = path.split_once('/')?;
    Some(IfaceName {
        package,
        interface,
        version,
    })
}

/// Whether a plugin built against `found` runs on this host (same major; for 0.x same minor).
pub(crate) fn version_compatible(found: &str) -> bool {
    let parse = |v: &str| -> Option<(u64, u64)> {
        let mut it = v.split(['.', '-', '+']);
        Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
    };
    match (parse(found), parse(WIT_VERSION)) {
        (Some((fa, fb)), Some((ha, hb))) => fa == ha && (ha != 0 || fb == hb),
        _ => false,
    }
}

fn functions(engine: &Engine, item: &ComponentItem) -> Vec<String> {
    match item {
        ComponentItem::ComponentInstance(i) => i
            .exports(engine)
            .filter(|(_, it)| matches!(it.ty, ComponentItem::ComponentFunc(_)))
            .map(|(n, _)| n.to_string())
            .collect(),
        _ => Vec::new(),
    }
}

pub(crate) fn of(engine: &Engine, component: &Component) -> Inspection {
    let ty = component.component_type();
    let imports: Vec<(String, Vec<String>)> = ty
        .imports(engine)
        .map(|(n, item)| (n.to_string(), functions(engine, &item.ty)))
        .collect();
    let exports: Vec<(String, Vec<String>)> = ty
        .exports(engine)
        .map(|(n, item)| (n.to_string(), functions(engine, &item.ty)))
        .collect();
    let mut wit_versions: Vec<String> = imports
        .iter()
        .chain(exports.iter())
        .filter_map(|(n, _)| parse_name(n))
        .filter(|n| n.package == WIT_PACKAGE)
        .filter_map(|n| n.version.map(str::to_string))
        .collect();
    wit_versions.sort();
    wit_versions.dedup();
    let exported: Vec<&str> = exports
        .iter()
        .filter_map(|(n, _)| parse_name(n))
        .filter(|n| n.package == WIT_PACKAGE)
        .map(|n| n.interface)
        .collect();
    let worlds = PluginWorld::ALL
        .into_iter()
        .filter(|w| w.exports().iter().all(|e| exported.contains(e)))
        .collect();
    Inspection {
        imports,
        exports,
        wit_versions,
        worlds,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compatible_with_the_host() {
        assert!(version_compatible("0.1.0"));
        assert!(version_compatible("0.1.7"));
        assert!(!version_compatible("0.2.0"));
        assert!(!version_compatible("1.0.0"));
        assert!(!version_compatible("9.0.0"));
        assert!(!version_compatible("garbage"));
    }

    #[test]
    fn interface_names() {
        let n = parse_name("switchyard:plugin/mapping@0.1.0").expect("name");
        assert_eq!(
            (n.package, n.interface, n.version),
            ("switchyard:plugin", "mapping", Some("0.1.0"))
        );
        assert!(parse_name("bare").is_none());
    }
}
