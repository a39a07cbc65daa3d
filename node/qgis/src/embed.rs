//! The `wpsmesh_qgis` Python package, compiled into the binary and served to `import` by a
//! meta-path finder, so the worker needs no source tree at run time.

use std::ffi::CString;

use pyo3::prelude::*;
use pyo3::types::PyDict;

/// `(name, source)` of `python/wpsmesh_qgis/<name>.py`.
macro_rules! module {
    ($name:literal) => {
        (
            $name,
            include_str!(concat!("../python/wpsmesh_qgis/", $name, ".py")),
        )
    };
}

/// Every module of the package: (module name, source).
const MODULES: &[(&str, &str)] = &[
    module!("__init__"),
    module!("bootstrap"),
    module!("convert"),
    module!("describe"),
    module!("errors"),
    module!("feedback"),
    module!("formats"),
    module!("outputs"),
    module!("params"),
    module!("run"),
];

/// The package name, as imported.
pub const PACKAGE: &str = "wpsmesh_qgis";

/// Serves `{package: (source, is_package)}` to `import`. Code objects get a `<wpsmesh-worker>/...`
/// file name, and `get_source` lets tracebacks show the lines.
const FINDER: &str = r#"
import importlib.abc
import importlib.util
import sys


class EmbeddedFinder(importlib.abc.MetaPathFinder, importlib.abc.InspectLoader):
    def __init__(self, modules):
        self.modules = modules

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in self.modules:
            return None
        return importlib.util.spec_from_loader(
            fullname, self, origin=self._filename(fullname),
            is_package=self.is_package(fullname))

    def is_package(self, fullname):
        return self.modules[fullname][1]

    def get_source(self, fullname):
        return self.modules[fullname][0]

    def get_code(self, fullname):
        return compile(self.get_source(fullname), self._filename(fullname), "exec",
                       dont_inherit=True)

    def _filename(self, fullname):
        name = fullname.replace(".", "/")
        return f"<wpsmesh-worker>/{name}/__init__.py" if self.is_package(fullname) \
            else f"<wpsmesh-worker>/{name}.py"


def install(modules):
    sys.meta_path.insert(0, EmbeddedFinder(modules))
"#;

/// Makes `import wpsmesh_qgis...` load the embedded sources.
pub fn install(py: Python<'_>) -> PyResult<()> {
    let modules = PyDict::new(py);
    for (name, source) in MODULES {
        let (full, is_package) = if *name == "__init__" {
            (PACKAGE.to_owned(), true)
        } else {
            (format!("{PACKAGE}.{name}"), false)
        };
        modules.set_item(full, (*source, is_package))?;
    }
    let code = CString::new(FINDER)?;
    let finder = PyModule::from_code(py, &code, c"<wpsmesh-worker>/finder.py", c"_wpsmesh_finder")?;
    finder.getattr("install")?.call1((modules,))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_python_module_is_embedded() {
        let folder = concat!(env!("CARGO_MANIFEST_DIR"), "/python/wpsmesh_qgis");
        let mut on_disk: Vec<String> = std::fs::read_dir(folder)
            .expect("package folder")
            .filter_map(|entry| {
                let name = entry.ok()?.file_name().into_string().ok()?;
                name.strip_suffix(".py").map(str::to_owned)
            })
            .collect();
        on_disk.sort();
        let embedded: Vec<&str> = MODULES.iter().map(|(name, _)| *name).collect();
        assert_eq!(on_disk, embedded);
    }
}
