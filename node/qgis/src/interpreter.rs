//! The embedded interpreter, configured explicitly before anything else touches Python: the
//! Python QGIS was built for (fixed at build time, see `build.rs`), isolated from the caller's
//! PATH, virtualenv, `PYTHONHOME`, `PYTHONPATH` and user site-packages.

use std::ffi::{CStr, CString};
use std::mem::MaybeUninit;

use anyhow::Context;
use pyo3::ffi;

/// `sys.base_prefix` of the interpreter pyo3 links against.
pub const HOME: &str = env!("WPSMESH_PYTHON_HOME");
/// Its executable, given as the program name so that nothing is looked up on PATH.
pub const EXECUTABLE: &str = env!("WPSMESH_PYTHON_EXECUTABLE");

/// Initialises Python with an isolated configuration whose home and program are [`HOME`] and
/// [`EXECUTABLE`]. Call once, first; `Python::initialize` afterwards finds it initialised.
pub fn initialize() -> anyhow::Result<()> {
    let home = CString::new(HOME).context("python home")?;
    let program = CString::new(EXECUTABLE).context("python executable")?;
    #[allow(unsafe_code)]
    // SAFETY: the documented PyConfig sequence (init, set strings, initialise, clear) on a
    // config this function owns, before any other Python call; the C strings outlive the
    // calls that copy them.
    unsafe {
        let mut config = MaybeUninit::<ffi::PyConfig>::uninit();
        let c = config.as_mut_ptr();
        ffi::PyConfig_InitIsolatedConfig(c);
        let mut status = ffi::PyConfig_SetBytesString(c, &raw mut (*c).home, home.as_ptr());
        if ffi::PyStatus_Exception(status) == 0 {
            status = ffi::PyConfig_SetBytesString(c, &raw mut (*c).program_name, program.as_ptr());
        }
        if ffi::PyStatus_Exception(status) == 0 {
            (*c).install_signal_handlers = 0;
            status = ffi::Py_InitializeFromConfig(c);
        }
        ffi::PyConfig_Clear(c);
        if ffi::PyStatus_Exception(status) != 0 {
            let message = if status.err_msg.is_null() {
                "unknown error".to_owned()
            } else {
                CStr::from_ptr(status.err_msg)
                    .to_string_lossy()
                    .into_owned()
            };
            anyhow::bail!("cannot initialise python at {HOME}: {message}");
        }
    }
    Ok(())
}
