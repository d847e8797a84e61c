//! Nothing lost on disk: checkpoints are written to a temporary file in the same directory,
//! flushed, synced and renamed over the target, so a failure mid-write leaves the old one whole.

use crate::common::{classifier, weight_bits, Scratch};
use dendrite_nn::{write_atomic, NnError};
use std::io::Write;

// ANCHOR: atomic_write
#[test]
fn failed_checkpoint_write_leaves_the_old_one_intact() {
    let dir = Scratch::new("atomic");
    let path = dir.path().join("weights.safetensors");
    let first = classifier(0, 3, 4, 2);
    first.save_weights(&path).unwrap();
    let old = std::fs::read(&path).unwrap();

    // A crash mid-write, simulated: `save_weights` writes through `write_atomic`, and this
    // writer fails after half the bytes.
    let err = write_atomic(&path, |f| {
        f.write_all(&old[..old.len() / 2])?;
        Err(std::io::Error::other("simulated failure"))
    })
    .unwrap_err();
    assert!(matches!(&err, NnError::Io { path: p, .. } if p == &path));
    assert_eq!(
        err.to_string(),
        format!("{}: I/O error: simulated failure", path.display())
    );
    // The old checkpoint is intact, byte for byte, still loads, and no temporary file is left.
    assert_eq!(std::fs::read(&path).unwrap(), old);
    let mut reloaded = classifier(9, 3, 4, 2);
    reloaded.load_weights(&path).unwrap();
    assert_eq!(weight_bits(&reloaded), weight_bits(&first));
    assert_eq!(dir.listing(), ["weights.safetensors"]);

    // A save that cannot start (its directory does not exist) fails cleanly too.
    let err = first
        .save_weights(dir.path().join("missing/w.safetensors"))
        .unwrap_err();
    assert!(matches!(err, NnError::Io { .. }), "{err}");
}
// ANCHOR_END: atomic_write

#[test]
fn concurrent_saves_to_one_path_leave_a_whole_checkpoint() {
    let dir = Scratch::new("concurrent");
    let path = dir.path().join("weights.safetensors");
    let models: Vec<_> = (0..4).map(|seed| classifier(seed, 3, 4, 2)).collect();
    let candidates: Vec<_> = models.iter().map(weight_bits).collect();
    let barrier = std::sync::Barrier::new(models.len());
    std::thread::scope(|s| {
        for model in models {
            let (path, barrier) = (&path, &barrier);
            s.spawn(move || {
                barrier.wait();
                for _ in 0..20 {
                    model.save_weights(path).unwrap();
                }
            });
        }
    });
    // Each writer had its own temporary file, so the survivor is one model's complete file.
    let mut loaded = classifier(99, 3, 4, 2);
    loaded.load_weights(&path).unwrap();
    assert!(candidates.contains(&weight_bits(&loaded)));
    assert_eq!(dir.listing(), ["weights.safetensors"]);
}

#[test]
fn saving_to_a_long_file_name_keeps_the_temporary_name_legal() {
    let dir = Scratch::new("long-name");
    // 250 bytes: legal (NAME_MAX is 255), but the temporary name used to be longer than that.
    let name = format!("{}.safetensors", "w".repeat(238));
    assert_eq!(name.len(), 250);
    let path = dir.path().join(&name);
    let model = classifier(0, 3, 4, 2);
    model.save_weights(&path).unwrap();
    let mut loaded = classifier(9, 3, 4, 2);
    loaded.load_weights(&path).unwrap();
    assert_eq!(weight_bits(&loaded), weight_bits(&model));
    assert_eq!(dir.listing(), [name]);
}
