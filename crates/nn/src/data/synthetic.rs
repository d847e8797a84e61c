//! Synthetic digits: procedurally drawn 28x28 images of 0-9, for tests, examples and machines
//! without the MNIST files.
//!
//! **This is not MNIST.** Each digit is a fixed pen-stroke template (lines and elliptic arcs
//! on a unit square), drawn with random per-stroke wobble (vertices moved, arcs resized and
//! cut at other angles), a random affine map (scale, aspect, rotation, italic shear, shift),
//! a random pen width and ink level, then anti-aliased and lightly noised. The images look
//! like crude handwriting centred in a 20 px box as MNIST's are, no two are identical, and a
//! 784-32-10 MLP learns them to well over 90 % accuracy in a few epochs; accuracies measured on
//! them say nothing about MNIST.
//!
//! Everything is drawn from a `ChaCha8Rng` seeded with the caller's seed, so the same seed gives
//! the same bytes (the trigonometry is `f32` from the platform's libm, so another platform could
//! in principle round a rare edge pixel differently).

use std::path::Path;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::batches::fisher_yates;
use super::dataset::Dataset;
use super::error::{DataError, IN_MEMORY};
use super::limit::{check_bytes, try_vec};
use super::mnist::Mnist;
use super::{MNIST_CLASSES, MNIST_COLS, MNIST_FEATURES, MNIST_ROWS};

/// One pen stroke of a template, in unit coordinates: `x` right, `y` down, the digit's box
/// is `[0, 1]^2`.
#[derive(Debug, Clone, Copy)]
enum Stroke {
    /// A polyline through the points.
    Poly(&'static [(f32, f32)]),
    /// An elliptic arc: centre, radii, start and end angle in degrees (0 = right, 90 = down),
    /// drawn from `from` to `to`.
    Arc {
        cx: f32,
        cy: f32,
        rx: f32,
        ry: f32,
        from: f32,
        to: f32,
    },
}

use Stroke::{Arc, Poly};

/// The strokes of each digit, indexed by the digit.
const TEMPLATES: [&[Stroke]; 10] = [
    // 0: one tall ellipse.
    &[Arc {
        cx: 0.5,
        cy: 0.5,
        rx: 0.3,
        ry: 0.45,
        from: 0.0,
        to: 360.0,
    }],
    // 1: a flag and a downstroke.
    &[Poly(&[(0.33, 0.2), (0.55, 0.04), (0.55, 0.96)])],
    // 2: a hook over the top, a diagonal, a base.
    &[
        Arc {
            cx: 0.5,
            cy: 0.3,
            rx: 0.3,
            ry: 0.25,
            from: 200.0,
            to: 380.0,
        },
        Poly(&[(0.78, 0.39), (0.18, 0.95), (0.86, 0.95)]),
    ],
    // 3: two bowls open to the left.
    &[
        Arc {
            cx: 0.5,
            cy: 0.28,
            rx: 0.27,
            ry: 0.22,
            from: 200.0,
            to: 450.0,
        },
        Arc {
            cx: 0.5,
            cy: 0.72,
            rx: 0.3,
            ry: 0.23,
            from: 270.0,
            to: 520.0,
        },
    ],
    // 4: a downstroke, the diagonal, the crossbar.
    &[Poly(&[
        (0.65, 0.96),
        (0.65, 0.04),
        (0.14, 0.68),
        (0.88, 0.68),
    ])],
    // 5: a top bar, a short downstroke, a bowl.
    &[
        Poly(&[(0.8, 0.05), (0.32, 0.05), (0.28, 0.46)]),
        Arc {
            cx: 0.5,
            cy: 0.68,
            rx: 0.3,
            ry: 0.27,
            from: 220.0,
            to: 520.0,
        },
    ],
    // 6: a sweep down the left into a closed loop.
    &[
        Poly(&[(0.72, 0.05), (0.5, 0.2), (0.33, 0.44), (0.24, 0.7)]),
        Arc {
            cx: 0.5,
            cy: 0.7,
            rx: 0.26,
            ry: 0.25,
            from: 0.0,
            to: 360.0,
        },
    ],
    // 7: a top bar and a long diagonal.
    &[Poly(&[(0.14, 0.05), (0.86, 0.05), (0.42, 0.96)])],
    // 8: two stacked loops.
    &[
        Arc {
            cx: 0.5,
            cy: 0.27,
            rx: 0.23,
            ry: 0.22,
            from: 0.0,
            to: 360.0,
        },
        Arc {
            cx: 0.5,
            cy: 0.72,
            rx: 0.28,
            ry: 0.23,
            from: 0.0,
            to: 360.0,
        },
    ],
    // 9: a loop on a stem.
    &[
        Arc {
            cx: 0.5,
            cy: 0.3,
            rx: 0.27,
            ry: 0.25,
            from: 0.0,
            to: 360.0,
        },
        Poly(&[(0.77, 0.3), (0.72, 0.96)]),
    ],
];

/// Height in pixels of the unit box before scaling (MNIST digits fit a 20x20 box).
const BOX: f32 = 20.0;
/// Degrees between the sampled points of an arc.
const ARC_STEP: f32 = 15.0;

/// `x' = a x + b y + tx`, `y' = c x + d y + ty`.
#[derive(Debug, Clone, Copy)]
struct Affine {
    a: f32,
    b: f32,
    c: f32,
    d: f32,
    tx: f32,
    ty: f32,
}

impl Affine {
    /// Rotation * shear * scale about the unit box's centre, then a shift of the image centre.
    fn random(rng: &mut ChaCha8Rng) -> Self {
        let angle: f32 = rng.gen_range(-0.22..0.22);
        let shear: f32 = rng.gen_range(-0.35..0.2);
        let sy = BOX * rng.gen_range(0.8..1.08);
        let sx = sy * rng.gen_range(0.75..1.2);
        let (s, c) = angle.sin_cos();
        let centre_x = (MNIST_COLS as f32 - 1.0) / 2.0;
        let centre_y = (MNIST_ROWS as f32 - 1.0) / 2.0;
        Affine {
            a: c * sx,
            b: (c * shear - s) * sy,
            c: s * sx,
            d: (s * shear + c) * sy,
            tx: centre_x + rng.gen_range(-2.0..2.0),
            ty: centre_y + rng.gen_range(-2.0..2.0),
        }
    }

    /// Maps a unit-box point to pixel coordinates (pixel centres at integers).
    fn apply(&self, (x, y): (f32, f32)) -> (f32, f32) {
        let (x, y) = (x - 0.5, y - 0.5);
        (
            self.a * x + self.b * y + self.tx,
            self.c * x + self.d * y + self.ty,
        )
    }
}

/// Appends the wobbled points of `stroke` (in pixel coordinates) to `points`.
fn stroke_points(stroke: Stroke, map: &Affine, rng: &mut ChaCha8Rng, points: &mut Vec<(f32, f32)>) {
    match stroke {
        Poly(vertices) => {
            for &(x, y) in vertices {
                let x = x + rng.gen_range(-0.05..0.05);
                let y = y + rng.gen_range(-0.05..0.05);
                points.push(map.apply((x, y)));
            }
        }
        Arc {
            cx,
            cy,
            rx,
            ry,
            from,
            to,
        } => {
            let cx = cx + rng.gen_range(-0.03..0.03);
            let cy = cy + rng.gen_range(-0.03..0.03);
            let rx = rx * rng.gen_range(0.85..1.12);
            let ry = ry * rng.gen_range(0.88..1.1);
            // Closed loops start anywhere and may overshoot a little; open arcs stretch or
            // shrink at both ends.
            let (from, to) = if to - from >= 360.0 {
                let start = rng.gen_range(0.0..360.0);
                (start, start + 360.0 + rng.gen_range(0.0..25.0))
            } else {
                (
                    from + rng.gen_range(-15.0..15.0),
                    to + rng.gen_range(-15.0..15.0),
                )
            };
            let steps = ((to - from).abs() / ARC_STEP).ceil().max(1.0) as usize;
            for k in 0..=steps {
                let t = (from + (to - from) * k as f32 / steps as f32).to_radians();
                points.push(map.apply((cx + rx * t.cos(), cy + ry * t.sin())));
            }
        }
    }
}

/// Distance from `p` to the segment `a`-`b`.
fn segment_distance(p: (f32, f32), a: (f32, f32), b: (f32, f32)) -> f32 {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let len2 = dx * dx + dy * dy;
    let t = if len2 > 0.0 {
        (((p.0 - a.0) * dx + (p.1 - a.1) * dy) / len2).clamp(0.0, 1.0)
    } else {
        0.0
    };
    (p.0 - (a.0 + t * dx)).hypot(p.1 - (a.1 + t * dy))
}

/// Inks the segment `a`-`b` with pen radius `radius` into `canvas`, anti-aliased (coverage
/// falls from 1 to 0 over the pixel straddling the pen's edge), keeping the darkest value.
fn draw_segment(canvas: &mut [f32], a: (f32, f32), b: (f32, f32), radius: f32, ink: f32) {
    let reach = radius + 1.0;
    let max_x = (MNIST_COLS - 1) as f32;
    let max_y = (MNIST_ROWS - 1) as f32;
    let x0 = (a.0.min(b.0) - reach).floor().clamp(0.0, max_x) as usize;
    let x1 = (a.0.max(b.0) + reach).ceil().clamp(0.0, max_x) as usize;
    let y0 = (a.1.min(b.1) - reach).floor().clamp(0.0, max_y) as usize;
    let y1 = (a.1.max(b.1) + reach).ceil().clamp(0.0, max_y) as usize;
    for y in y0..=y1 {
        for x in x0..=x1 {
            let d = segment_distance((x as f32, y as f32), a, b);
            let coverage = (radius + 0.5 - d).clamp(0.0, 1.0) * ink;
            if let Some(px) = canvas.get_mut(y * MNIST_COLS + x) {
                *px = px.max(coverage);
            }
        }
    }
}

/// Draws one image of `digit` into `out` (784 bytes), reusing `canvas` and `points`.
fn render(
    digit: u8,
    rng: &mut ChaCha8Rng,
    canvas: &mut [f32],
    points: &mut Vec<(f32, f32)>,
    out: &mut [u8],
) {
    canvas.fill(0.0);
    let map = Affine::random(rng);
    let radius = rng.gen_range(0.7..1.6);
    let strokes = TEMPLATES.get(usize::from(digit)).copied().unwrap_or(&[]);
    for &stroke in strokes {
        points.clear();
        stroke_points(stroke, &map, rng, points);
        let ink = rng.gen_range(0.8..1.0);
        for pair in points.windows(2) {
            if let [a, b] = *pair {
                draw_segment(canvas, a, b, radius, ink);
            }
        }
    }
    for (dst, &v) in out.iter_mut().zip(canvas.iter()) {
        let v = if v > 0.0 {
            v * rng.gen_range(0.85..1.1)
        } else if rng.gen_bool(0.01) {
            rng.gen_range(0.05..0.3)
        } else {
            0.0
        };
        *dst = (v * 255.0).round().clamp(0.0, 255.0) as u8;
    }
}

/// Checks that `n` images fit the per-tensor limit and reserves their pixels and labels,
/// fallibly, before anything is drawn.
fn buffers(n: usize) -> Result<(Vec<u8>, Vec<u8>), DataError> {
    let memory = Path::new(IN_MEMORY);
    let bytes = (n as u64).checked_mul(MNIST_FEATURES as u64);
    let len = check_bytes(memory, "the synthetic images", bytes)?;
    let mut pixels = try_vec(memory, "the synthetic images", len)?;
    pixels.resize(len, 0);
    let labels = try_vec(memory, "the synthetic labels", n)?;
    Ok((pixels, labels))
}

fn generate(n: usize, seed: u64, stream: u64) -> Result<Dataset, DataError> {
    let (mut pixels, mut labels) = buffers(n)?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    // Exactly balanced classes (up to n % 10), in a shuffled order.
    labels.extend((0..n).map(|i| u8::try_from(i % MNIST_CLASSES).unwrap_or(0)));
    fisher_yates(&mut labels, &mut rng);
    let mut canvas = [0f32; MNIST_FEATURES];
    let mut points = Vec::new();
    for (&digit, out) in labels.iter().zip(pixels.chunks_exact_mut(MNIST_FEATURES)) {
        render(digit, &mut rng, &mut canvas, &mut points, out);
    }
    Ok(Dataset::from_generated(
        pixels,
        labels,
        MNIST_ROWS,
        MNIST_COLS,
        MNIST_CLASSES,
    ))
}

/// `n` synthetic 28x28 digit images with labels 0-9 (each digit `n / 10` or `n / 10 + 1`
/// times, in shuffled order), fully determined by `seed`.
///
/// **Synthetic, not MNIST.** Each digit is a fixed pen-stroke template (lines and elliptic
/// arcs) drawn with random per-stroke wobble, a random affine map (scale, aspect, rotation,
/// italic shear, shift of up to 2 px), a random pen width and ink level, anti-aliased and
/// lightly noised, centred in a 20 px box as MNIST's digits are. No two images are identical,
/// and a 784-32-10 MLP learns them to about 96 % test accuracy in 3 epochs. Use them where the
/// real files may be missing (doc examples, tests, CI); accuracies on them say nothing about
/// MNIST. The images depend only on `seed` (a ChaCha8 stream).
///
/// # Errors
///
/// [`DataError::TooLarge`] if the `n * 784` pixel bytes overflow or exceed the per-tensor
/// limit ([`dendrite_graph::limits::max_tensor_bytes`]), [`DataError::AllocationFailed`] if
/// the allocator refuses them: checked before anything is drawn.
///
/// # Example
///
/// ```
/// use dendrite_nn::data::{synthetic_digits, DataError};
///
/// let ds = synthetic_digits(200, 1)?;
/// assert_eq!((ds.len(), ds.rows(), ds.cols(), ds.classes()), (200, 28, 28, 10));
/// assert_eq!(ds.class_counts(), vec![20; 10]);
/// assert_eq!(ds.images(), synthetic_digits(200, 1)?.images());
/// // An absurd size is an error, not an abort.
/// assert!(matches!(synthetic_digits(usize::MAX, 1), Err(DataError::TooLarge { .. })));
/// # Ok::<(), DataError>(())
/// ```
pub fn synthetic_digits(n: usize, seed: u64) -> Result<Dataset, DataError> {
    generate(n, seed, 0)
}

/// A synthetic stand-in for MNIST: 6 000 training and 1 000 test images from
/// [`synthetic_digits`]'s generator. The training set is `synthetic_digits(6000, seed)`; the test
/// set is drawn from another stream of the same seed, so it shares no draws with it.
///
/// **Synthetic, not MNIST**: accuracies on it say nothing about MNIST.
///
/// # Example
///
/// # Errors
///
/// As [`synthetic_digits`]: only when the per-tensor limit has been lowered below the 4.7 MB
/// of training pixels, or the allocator refuses them.
///
/// # Example
///
/// ```
/// use dendrite_nn::data::synthetic_mnist;
///
/// let data = synthetic_mnist(0)?;
/// assert_eq!((data.train.len(), data.test.len()), (6000, 1000));
/// # Ok::<(), dendrite_nn::data::DataError>(())
/// ```
pub fn synthetic_mnist(seed: u64) -> Result<Mnist, DataError> {
    Ok(Mnist {
        train: generate(SYNTHETIC_TRAIN, seed, 0)?,
        test: generate(SYNTHETIC_TEST, seed, 1)?,
    })
}

/// Training-set size of [`synthetic_mnist`].
pub const SYNTHETIC_TRAIN: usize = 6000;
/// Test-set size of [`synthetic_mnist`].
pub const SYNTHETIC_TEST: usize = 1000;
