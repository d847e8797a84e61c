//! The real engine: exported models checked by `onnx.checker` and run by onnxruntime, through
//! `scripts/onnx_check.py` and the Python that `DENDRITE_ONNX_PYTHON` names (`.ci/run` makes a
//! venv with pinned onnx and onnxruntime and sets it).

use ndarray::{ArrayD, ArrayViewD, IxDyn};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

static RUN_SERIAL: AtomicUsize = AtomicUsize::new(0);

/// A Python with onnx and onnxruntime installed.
pub struct Runtime {
    python: PathBuf,
}

/// The feeds of one run: input names and values.
pub type Feeds<'a> = Vec<(&'a str, ArrayViewD<'a, f32>)>;

impl Runtime {
    /// The runtime named by `DENDRITE_ONNX_PYTHON`; without it, says that `test` is skipped
    /// (and fails under CI, which must run these tests for real).
    pub fn from_env(test: &str) -> Option<Runtime> {
        match std::env::var_os("DENDRITE_ONNX_PYTHON") {
            Some(python) => Some(Runtime {
                python: PathBuf::from(python),
            }),
            None => {
                assert!(
                    std::env::var_os("CI").is_none(),
                    "{test}: DENDRITE_ONNX_PYTHON must be set under CI (.ci/run sets it)"
                );
                eprintln!(
                    "{test}: SKIPPED, onnxruntime not available: set DENDRITE_ONNX_PYTHON to a \
                     Python with onnx and onnxruntime (.ci/run makes one)"
                );
                None
            }
        }
    }

    /// A fresh scratch directory for one call.
    pub fn scratch(&self) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "dendrite-onnx-{}-{}",
            std::process::id(),
            RUN_SERIAL.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("scratch directory");
        dir
    }

    /// Checks `model` with `onnx.checker` and runs it once per element of `runs`, returning
    /// every output of every run (in the model's output order).
    pub fn run(&self, model: &[u8], runs: &[Feeds<'_>]) -> Vec<Vec<(String, ArrayD<f32>)>> {
        let dir = self.scratch();
        let model_path = dir.join("model.onnx");
        std::fs::write(&model_path, model).expect("write model");
        let manifest = manifest(&dir, runs);
        let manifest_path = dir.join("inputs.json");
        std::fs::write(&manifest_path, manifest.to_string()).expect("write manifest");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/onnx_check.py");
        self.python_ok(&[
            script.as_os_str(),
            model_path.as_os_str(),
            manifest_path.as_os_str(),
            dir.as_os_str(),
        ]);
        let outputs = read_outputs(&dir);
        std::fs::remove_dir_all(&dir).ok();
        outputs
    }

    /// The onnxruntime shared library inside the Python package (`onnxruntime/capi`), for
    /// the `ort` crate to load.
    pub fn onnxruntime_library(&self) -> PathBuf {
        let code = "import onnxruntime, os; print(os.path.join(os.path.dirname(onnxruntime.__file__), 'capi'))";
        let printed = self.python_ok(&["-c".as_ref(), code.as_ref()]);
        let capi = PathBuf::from(printed.trim());
        let entries = std::fs::read_dir(&capi).expect("onnxruntime's capi directory");
        entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| {
                p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                    n.starts_with("libonnxruntime.so")
                        || n == "onnxruntime.dll"
                        || n.starts_with("libonnxruntime.") && n.ends_with(".dylib")
                })
            })
            .unwrap_or_else(|| panic!("no onnxruntime library in {}", capi.display()))
    }

    /// Runs the Python with `args`, panicking with its stderr if it fails.
    pub fn python_ok(&self, args: &[&std::ffi::OsStr]) -> String {
        let out = Command::new(&self.python)
            .args(args)
            .output()
            .expect("start the Python of DENDRITE_ONNX_PYTHON");
        assert!(
            out.status.success(),
            "{:?} failed: {}\n{}",
            args,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

fn manifest(dir: &Path, runs: &[Feeds<'_>]) -> serde_json::Value {
    let runs: Vec<_> = runs
        .iter()
        .enumerate()
        .map(|(r, feeds)| {
            let inputs: Vec<_> = feeds
                .iter()
                .enumerate()
                .map(|(i, (name, value))| {
                    let file = dir.join(format!("run{r}_in{i}.bin"));
                    let bytes: Vec<u8> = value.iter().flat_map(|v| v.to_le_bytes()).collect();
                    std::fs::write(&file, bytes).expect("write input");
                    serde_json::json!({"name": name, "shape": value.shape(), "file": file})
                })
                .collect();
            serde_json::json!({ "inputs": inputs })
        })
        .collect();
    serde_json::json!({ "runs": runs })
}

fn read_outputs(dir: &Path) -> Vec<Vec<(String, ArrayD<f32>)>> {
    let text = std::fs::read_to_string(dir.join("outputs.json")).expect("outputs.json");
    let json: serde_json::Value = serde_json::from_str(&text).expect("outputs.json parses");
    let runs = json["runs"].as_array().expect("runs");
    runs.iter()
        .map(|run| {
            run["outputs"]
                .as_array()
                .expect("outputs")
                .iter()
                .map(|o| {
                    let shape: Vec<usize> = o["shape"]
                        .as_array()
                        .expect("shape")
                        .iter()
                        .map(|d| d.as_u64().expect("dim") as usize)
                        .collect();
                    let bytes = std::fs::read(o["file"].as_str().expect("file")).expect("read");
                    let values: Vec<f32> = bytes
                        .chunks_exact(4)
                        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                        .collect();
                    let name = o["name"].as_str().expect("name").to_owned();
                    (
                        name,
                        ArrayD::from_shape_vec(IxDyn(&shape), values).expect("shape"),
                    )
                })
                .collect()
        })
        .collect()
}

/// Asserts that onnxruntime's value equals Dendrite's within `rtol` relative (plus `atol`,
/// for values that cancel to near zero), NaN matching NaN and infinities matching exactly.
pub fn assert_close(
    what: &str,
    ours: ArrayViewD<'_, f32>,
    theirs: ArrayViewD<'_, f32>,
    rtol: f32,
    atol: f32,
) {
    assert_eq!(ours.shape(), theirs.shape(), "{what}: shapes differ");
    for (i, (&a, &b)) in ours.iter().zip(theirs.iter()).enumerate() {
        let same = (a.is_nan() && b.is_nan())
            || a == b
            || (a - b).abs() <= rtol * a.abs().max(b.abs()) + atol;
        assert!(same, "{what}: element {i}: Dendrite {a}, onnxruntime {b}");
    }
}

/// Deterministic values in `[lo, hi)` (a xorshift generator: the tests need no seedable crate).
pub fn values(shape: &[usize], seed: u64, lo: f32, hi: f32) -> ArrayD<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let n = shape.iter().product();
    let v = (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let unit = (state >> 40) as f32 / (1u64 << 24) as f32;
            lo + (hi - lo) * unit
        })
        .collect();
    ArrayD::from_shape_vec(IxDyn(shape), v).expect("shape")
}
