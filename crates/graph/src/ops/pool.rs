//! Max and average pooling over NHWC images, and the linear maps of their derivatives.
//!
//! A pool of size `(ph, pw)` with strides `(sh, sw)` and `valid` or `same` padding (see
//! [`window`](super::window); Keras' `MaxPooling2D` defaults the strides to the pool size)
//! reduces each window of each channel to one value:
//!
//! - `max_pool2d(x)[n, i, j, c] = max over the window's pixels (h, v) of x[n, h, v, c]`;
//! - `avg_pool2d(x)[n, i, j, c] = (1 / |window|) Σ x[n, h, v, c]`, where `|window|` counts only
//!   the pixels inside the image (padding is not averaged in, as in TensorFlow).
//!
//! Shape rule: `x` has rank 4 with known height and width (batch and channels may be
//! dynamic); the output is `[N, OH, OW, C]`.
//!
//! **Tie rule.** The maximum of a window is attributed to its *first* maximal element in
//! row-major window order (top row first, left to right), as TensorFlow does: that one element
//! receives the whole gradient. A NaN counts as larger than any number, so it propagates, and
//! the first NaN takes the gradient.
//!
//! Derivatives. Average pooling is linear: `x̄ = avg_pool2d_grad(ȳ)`, which spreads each
//! `ȳ[n, i, j, c] / |window|` over the window's pixels, and the two are each other's adjoints.
//! Max pooling selects one element per window, `y = G_x(x)` where the gather `G_x(v)` reads `v`
//! at the argmax positions of `x`; with the argmax held fixed (it is piecewise constant), the
//! derivative is the scatter `S_x(ȳ)`, adding each `ȳ` into its window's argmax position.
//! `S_x` and `G_x` are adjoint (`⟨S_x(ȳ), v⟩ = ⟨ȳ, G_x(v)⟩`), so `max_pool2d_scatter`'s
//! derivative is `max_pool2d_gather` and back, with no gradient into the `x` that only picks
//! the positions: gradients of any order stay within this family.

use crate::error::{GraphError, Result};
use crate::ops::window::{axes2, fixed_hw, Axis1, Padding};
use crate::ops::{check_arity, OperandGrads};
use crate::shape::{Dim, Shape};
use crate::{Element, Graph, NodeId, Op};
use ndarray::{ArrayViewD, ArrayViewMutD};
use smallvec::smallvec;

/// Size, strides and padding of a pooling window.
///
/// ```
/// use dendrite_graph::ops::{Padding, Pool2d};
/// let p = Pool2d::new([2, 2]);
/// assert_eq!((p.strides, p.padding), ([2, 2], Padding::Valid));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Pool2d {
    /// Window `[height, width]`.
    pub size: [usize; 2],
    /// Steps between windows.
    pub strides: [usize; 2],
    /// `valid` or `same`.
    pub padding: Padding,
}

impl Pool2d {
    /// A `size` window moving by its own size, `valid` padding: Keras' `MaxPooling2D(size)`.
    pub fn new(size: [usize; 2]) -> Self {
        Pool2d {
            size,
            strides: size,
            padding: Padding::Valid,
        }
    }
}

family! {
    /// Pooling and the linear maps of its derivatives.
    ///
    /// ```
    /// use dendrite_graph::ops::PoolOp;
    /// assert_eq!(PoolOp::NAMES[0], "max_pool2d");
    /// ```
    #[derive(Debug, Clone, PartialEq, Eq, Hash)]
    pub enum PoolOp {
        /// `max_pool2d(x)`.
        Max(Pool2d) => "max_pool2d",
        /// `S_x(ȳ)`: `ȳ` added into the argmax positions of `x`'s windows, shaped like `x`.
        MaxScatter(Pool2d) => "max_pool2d_scatter",
        /// `G_x(v)`: `v` read at the argmax positions of `x`'s windows, shaped like the pool.
        MaxGather(Pool2d) => "max_pool2d_gather",
        /// `avg_pool2d(x)`.
        Avg(Pool2d) => "avg_pool2d",
        /// The adjoint of average pooling over an image of height and width `input_hw`.
        AvgGrad {
            /// The pooling whose gradient this is.
            pool: Pool2d,
            /// Height and width of its input.
            input_hw: [usize; 2],
        } => "avg_pool2d_grad",
    }
}

impl PoolOp {
    fn pool(&self) -> Pool2d {
        match *self {
            PoolOp::Max(p)
            | PoolOp::MaxScatter(p)
            | PoolOp::MaxGather(p)
            | PoolOp::Avg(p)
            | PoolOp::AvgGrad { pool: p, .. } => p,
        }
    }
}

fn windows(op: &PoolOp, node: &str, image: &Shape, hw: [usize; 2]) -> Result<[Axis1; 2]> {
    let p = op.pool();
    axes2(
        op.name(),
        node,
        image,
        hw,
        p.size,
        p.strides,
        [1, 1],
        p.padding,
    )
}

fn pooled(image: &Shape, axes: &[Axis1; 2]) -> Shape {
    let d = image.dims();
    Shape::new([d[0], Dim::Fixed(axes[0].out), Dim::Fixed(axes[1].out), d[3]])
}

/// Whether two shapes can be equal at run time.
fn compatible(a: &Shape, b: &Shape) -> bool {
    a.rank() == b.rank()
        && a.dims()
            .iter()
            .zip(b.dims())
            .all(|(x, y)| !matches!((x, y), (Dim::Fixed(p), Dim::Fixed(q)) if p != q))
}

pub(crate) fn infer(op: &PoolOp, node: &str, operands: &[&Shape]) -> Result<Shape> {
    let name = op.name();
    let arity = match op {
        PoolOp::Max(_) | PoolOp::Avg(_) | PoolOp::AvgGrad { .. } => 1,
        PoolOp::MaxScatter(_) | PoolOp::MaxGather(_) => 2,
    };
    check_arity(name, node, operands, arity)?;
    let x = operands[0];
    let (image, axes) = match *op {
        PoolOp::AvgGrad { input_hw, .. } => {
            fixed_hw(name, node, x)?;
            let d = x.dims();
            let image = Shape::new([d[0], Dim::Fixed(input_hw[0]), Dim::Fixed(input_hw[1]), d[3]]);
            (image.clone(), windows(op, node, &image, input_hw)?)
        }
        _ => (x.clone(), windows(op, node, x, fixed_hw(name, node, x)?)?),
    };
    let out = pooled(&image, &axes);
    let mismatch = |reason, lhs: &Shape, rhs: &Shape| GraphError::IncompatibleShapes {
        op: name,
        node: node.to_owned(),
        reason,
        lhs: lhs.clone(),
        rhs: rhs.clone(),
    };
    match op {
        PoolOp::Max(_) | PoolOp::Avg(_) => Ok(out),
        PoolOp::AvgGrad { .. } if compatible(x, &out) => Ok(image),
        PoolOp::MaxScatter(_) if compatible(operands[1], &out) => Ok(x.clone()),
        PoolOp::MaxGather(_) if compatible(operands[1], x) => Ok(out),
        PoolOp::AvgGrad { .. } => Err(mismatch(
            "cotangent is not shaped like the pool's output",
            x,
            &out,
        )),
        PoolOp::MaxScatter(_) => Err(mismatch(
            "cotangent is not shaped like the pool's output",
            operands[1],
            &out,
        )),
        PoolOp::MaxGather(_) => Err(mismatch(
            "values are not shaped like the image",
            operands[1],
            x,
        )),
    }
}

/// The order of the tie rule: `v` replaces the running maximum `best` when it is larger, or a
/// NaN where `best` is not. Equal values never replace: the first maximum wins.
#[inline]
fn wins<F: Element>(v: F, best: F) -> bool {
    v > best || (v.is_nan() && !best.is_nan())
}

/// The sizes of one run: the window axes, the batch and the channel count.
struct Run {
    axes: [Axis1; 2],
    batch: usize,
    c: usize,
}

/// Channels whose window argmax [`Run::max_route`] finds together (a stack block: any channel
/// count is done in blocks, with nothing allocated).
const CHANNEL_BLOCK: usize = 64;

/// For channels `k0..k0 + best.len()` of one image, the maximum over the window's pixels
/// `taps` into `best` and the pixel holding it into `at`, by the tie rule (an equal value
/// never replaces: the first maximum wins). A window without pixels leaves pixel 0.
fn block_argmax<F: Element>(
    image: &[F],
    c: usize,
    k0: usize,
    taps: impl Iterator<Item = usize>,
    best: &mut [F],
    at: &mut [usize],
) {
    at.fill(0);
    for (i, px) in taps.enumerate() {
        let src = &image[px * c + k0..px * c + k0 + best.len()];
        if i == 0 {
            best.copy_from_slice(src);
            at.fill(px);
            continue;
        }
        for ((b, a), &v) in best.iter_mut().zip(at.iter_mut()).zip(src) {
            let win = wins(v, *b);
            *b = if win { v } else { *b };
            *a = if win { px } else { *a };
        }
    }
}

/// [`block_argmax`] recording the winner's tap (its place in the window, counted from 0) as
/// a 32-bit index rather than its pixel: the same width as an `f32`, so the compares and
/// blends of the channel loop vectorize.
fn tap_argmax<F: Element>(
    image: &[F],
    c: usize,
    k0: usize,
    pixels: impl Iterator<Item = usize>,
    best: &mut [F],
    tap: &mut [u32],
) {
    tap.fill(0);
    for (t, px) in (0u32..).zip(pixels) {
        let src = &image[px * c + k0..px * c + k0 + best.len()];
        if t == 0 {
            best.copy_from_slice(src);
            continue;
        }
        for ((b, a), &v) in best.iter_mut().zip(tap.iter_mut()).zip(src) {
            let win = wins(v, *b);
            *b = if win { v } else { *b };
            *a = if win { t } else { *a };
        }
    }
}

/// The maximum over the window's pixels `taps` of each of an image's `dst.len()` channels,
/// by the tie rule. Written as a select rather than a branch, so the channel loop compiles
/// to vector compares and blends (the value chosen is the same).
fn window_max<F: Element>(image: &[F], c: usize, taps: impl Iterator<Item = usize>, dst: &mut [F]) {
    for (i, px) in taps.enumerate() {
        let src = &image[px * c..(px + 1) * c];
        if i == 0 {
            dst.copy_from_slice(src);
            continue;
        }
        for (d, &v) in dst.iter_mut().zip(src) {
            *d = if wins(v, *d) { v } else { *d };
        }
    }
}

impl Run {
    fn in_pixels(&self) -> usize {
        self.axes[0].n * self.axes[1].n
    }
    fn out_pixels(&self) -> usize {
        self.axes[0].out * self.axes[1].out
    }

    /// Calls `f(out_pixel, in_pixels)` for every window of an image, its input pixels (those
    /// inside the image) in row-major window order.
    fn each_window(&self, mut f: impl FnMut(usize, &mut dyn Iterator<Item = usize>)) {
        let [ah, aw] = self.axes;
        for oh in 0..ah.out {
            for ow in 0..aw.out {
                let mut taps = (0..ah.k).filter_map(|th| ah.source(oh, th)).flat_map(|ih| {
                    (0..aw.k)
                        .filter_map(move |tw| aw.source(ow, tw))
                        .map(move |iw| ih * aw.n + iw)
                });
                f(oh * aw.out + ow, &mut taps);
            }
        }
    }

    fn max<F: Element>(&self, x: &[F], y: &mut [F]) {
        let c = self.c;
        let [ah, aw] = self.axes;
        for (image, out) in x
            .chunks_exact(self.in_pixels() * c)
            .zip(y.chunks_exact_mut(self.out_pixels() * c))
        {
            for (oh, ow) in (0..ah.out).flat_map(|oh| (0..aw.out).map(move |ow| (oh, ow))) {
                let dst = &mut out[(oh * aw.out + ow) * c..][..c];
                match self.inside(oh, ow) {
                    Some(first) => window_max(image, c, self.window_at(first), dst),
                    None => window_max(image, c, self.taps(oh, ow), dst),
                }
            }
        }
    }

    /// The first pixel of window `(oh, ow)` when the whole window is inside the image and
    /// undilated: its pixels are then `kw` consecutive ones on each of `kh` rows.
    #[inline]
    fn inside(&self, oh: usize, ow: usize) -> Option<usize> {
        let [ah, aw] = self.axes;
        Some(ah.inside(oh)? * aw.n + aw.inside(ow)?)
    }

    /// The pixels of an inside window starting at pixel `first`, in row-major window order
    /// (the same order as [`Run::taps`], without its padding tests).
    #[inline]
    fn window_at(&self, first: usize) -> impl Iterator<Item = usize> {
        let [ah, aw] = self.axes;
        (0..ah.k).flat_map(move |th| {
            let row = first + th * aw.n;
            row..row + aw.k
        })
    }

    /// The input pixels of window `(oh, ow)` inside the image, in row-major window order.
    fn taps(&self, oh: usize, ow: usize) -> impl Iterator<Item = usize> {
        let [ah, aw] = self.axes;
        (0..ah.k)
            .filter_map(move |th| ah.source(oh, th))
            .flat_map(move |ih| {
                (0..aw.k)
                    .filter_map(move |tw| aw.source(ow, tw))
                    .map(move |iw| ih * aw.n + iw)
            })
    }

    /// `S_x(ȳ)` when `scatter`, else `G_x(v)`: both walk the argmax positions of `x`. A
    /// window's argmax is found for a block of channels at once, reading each pixel's channels
    /// contiguously (NHWC), so a channel costs a compare per pixel, not a walk of the window.
    fn max_route<F: Element>(&self, x: &[F], v: &[F], out: &mut [F], scatter: bool) {
        if scatter && self.tiles() {
            return self.scatter_tiled(x, v, out);
        }
        let (c, n_in, n_out) = (
            self.c,
            self.in_pixels() * self.c,
            self.out_pixels() * self.c,
        );
        if scatter {
            out.fill(F::zero());
        }
        let [ah, aw] = self.axes;
        let mut best = [F::zero(); CHANNEL_BLOCK];
        let mut at = [0usize; CHANNEL_BLOCK];
        for b in 0..self.batch {
            let image = &x[b * n_in..(b + 1) * n_in];
            for (oh, ow) in (0..ah.out).flat_map(|oh| (0..aw.out).map(move |ow| (oh, ow))) {
                let pooled = b * n_out + (oh * aw.out + ow) * c;
                for k0 in (0..c).step_by(CHANNEL_BLOCK) {
                    let width = CHANNEL_BLOCK.min(c - k0);
                    let (best, at) = (&mut best[..width], &mut at[..width]);
                    match self.inside(oh, ow) {
                        Some(first) => block_argmax(image, c, k0, self.window_at(first), best, at),
                        None => block_argmax(image, c, k0, self.taps(oh, ow), best, at),
                    }
                    for (j, &px) in at.iter().enumerate() {
                        let input = b * n_in + px * c + k0 + j;
                        let output = pooled + k0 + j;
                        if scatter {
                            out[input] = out[input] + v[output];
                        } else {
                            out[output] = v[input];
                        }
                    }
                }
            }
        }
    }

    /// Whether the windows tile the image: strides equal to the size and every window inside
    /// (Keras' default `valid` pooling), so that each pixel is in at most one window.
    fn tiles(&self) -> bool {
        let [ah, aw] = self.axes;
        let last = (ah.out.checked_sub(1), aw.out.checked_sub(1));
        ah.s == ah.k
            && aw.s == aw.k
            && self.inside(0, 0).is_some()
            && matches!(last, (Some(h), Some(w)) if self.inside(h, w).is_some())
    }

    /// `S_x(ȳ)` for windows that tile the image: every pixel of a window is written once, `ȳ`
    /// at the window's argmax and 0 elsewhere, with no zero fill before nor add (pixels no
    /// window covers, the last rows or columns of a pool that does not divide the image, are
    /// zeroed first). The same values as the general scatter, in one pass over `x̄`.
    fn scatter_tiled<F: Element>(&self, x: &[F], v: &[F], out: &mut [F]) {
        let (c, n_in, n_out) = (
            self.c,
            self.in_pixels() * self.c,
            self.out_pixels() * self.c,
        );
        let [ah, aw] = self.axes;
        if ah.out * ah.k < ah.n || aw.out * aw.k < aw.n {
            out.fill(F::zero());
        }
        let mut best = [F::zero(); CHANNEL_BLOCK];
        let mut tap = [0u32; CHANNEL_BLOCK];
        for ((image, grad), pooled) in x
            .chunks_exact(n_in)
            .zip(out.chunks_exact_mut(n_in))
            .zip(v.chunks_exact(n_out))
        {
            for (oh, ow) in (0..ah.out).flat_map(|oh| (0..aw.out).map(move |ow| (oh, ow))) {
                let Some(first) = self.inside(oh, ow) else {
                    continue;
                };
                let share = &pooled[(oh * aw.out + ow) * c..][..c];
                for k0 in (0..c).step_by(CHANNEL_BLOCK) {
                    let width = CHANNEL_BLOCK.min(c - k0);
                    let (best, tap) = (&mut best[..width], &mut tap[..width]);
                    tap_argmax(image, c, k0, self.window_at(first), best, tap);
                    for (t, px) in (0u32..).zip(self.window_at(first)) {
                        let dst = &mut grad[px * c + k0..][..width];
                        for ((d, &a), &s) in dst.iter_mut().zip(tap.iter()).zip(&share[k0..]) {
                            *d = if a == t { s } else { F::zero() };
                        }
                    }
                }
            }
        }
    }

    /// Pixels of window `o` inside the image: the divisor of the average.
    fn window_count(&self, o: usize) -> usize {
        let [ah, aw] = self.axes;
        let inside = |a: Axis1, o: usize| (0..a.k).filter(|&t| a.source(o, t).is_some()).count();
        inside(ah, o / aw.out) * inside(aw, o % aw.out)
    }

    /// Average pooling when `grad` is false (`x` → `y`), its adjoint when true (`ȳ` → `x̄`).
    fn avg<F: Element>(&self, from: &[F], to: &mut [F], grad: bool) {
        let c = self.c;
        let (n_in, n_out) = (self.in_pixels() * c, self.out_pixels() * c);
        if grad {
            to.fill(F::zero());
        }
        for b in 0..self.batch {
            self.each_window(|o, pixels| {
                let scale = F::one() / F::of(self.window_count(o) as f64);
                let pooled = b * n_out + o * c;
                if grad {
                    let share = &from[pooled..pooled + c];
                    for px in pixels {
                        let at = b * n_in + px * c;
                        for (acc, &v) in to[at..at + c].iter_mut().zip(share) {
                            *acc = *acc + v * scale;
                        }
                    }
                } else {
                    let dst = &mut to[pooled..pooled + c];
                    dst.fill(F::zero());
                    for px in pixels {
                        let at = b * n_in + px * c;
                        for (acc, &v) in dst.iter_mut().zip(&from[at..at + c]) {
                            *acc = *acc + v;
                        }
                    }
                    for v in dst.iter_mut() {
                        *v = *v * scale;
                    }
                }
            });
        }
    }
}

pub(crate) fn forward<F: Element>(
    op: &PoolOp,
    node: &str,
    inputs: &[ArrayViewD<'_, F>],
    mut out: ArrayViewMutD<'_, F>,
) -> Result<()> {
    let shapes: smallvec::SmallVec<[Shape; 2]> =
        inputs.iter().map(|v| Shape::fixed(v.shape())).collect();
    let refs: smallvec::SmallVec<[&Shape; 2]> = shapes.iter().collect();
    infer(op, node, &refs)?;
    let image: &[usize] = match op {
        PoolOp::AvgGrad { .. } => out.shape(),
        _ => inputs[0].shape(),
    };
    let hw = [image[1], image[2]];
    let run = Run {
        axes: windows(op, node, &shapes[0], hw)?,
        batch: image[0],
        c: image[3],
    };
    let views: smallvec::SmallVec<[_; 2]> = inputs.iter().map(|v| v.as_standard_layout()).collect();
    let slices: Option<smallvec::SmallVec<[&[F]; 2]>> =
        views.iter().map(|v| v.as_slice()).collect();
    let (Some(xs), Some(out)) = (slices, out.as_slice_mut()) else {
        return Err(GraphError::Internal {
            op: op.name(),
            node: node.to_owned(),
            what: "an operand or the output is not contiguous",
        });
    };
    match op {
        PoolOp::Max(_) => run.max(xs[0], out),
        PoolOp::MaxScatter(_) => run.max_route(xs[0], xs[1], out, true),
        PoolOp::MaxGather(_) => run.max_route(xs[0], xs[1], out, false),
        PoolOp::Avg(_) => run.avg(xs[0], out, false),
        PoolOp::AvgGrad { .. } => run.avg(xs[0], out, true),
    }
    Ok(())
}

// ANCHOR: pool_vjp
/// | op | gradient |
/// | --- | --- |
/// | `max_pool2d(x)` | `x̄ = S_x(ȳ)` |
/// | `S_x(v)` | `v̄ = G_x(c̄)`; `x`: none |
/// | `G_x(v)` | `v̄ = S_x(c̄)`; `x`: none |
/// | `avg_pool2d(x)` | `x̄ = avg_pool2d_grad(ȳ)` |
/// | `avg_pool2d_grad(y)` | `ȳ = avg_pool2d(c̄)` |
pub(crate) fn vjp<F: Element>(
    g: &mut Graph<F>,
    op: &PoolOp,
    xs: &[NodeId],
    c_bar: NodeId,
) -> Result<OperandGrads> {
    Ok(match *op {
        PoolOp::Max(p) => smallvec![Some(g.max_pool2d_scatter(xs[0], c_bar, p)?)],
        PoolOp::MaxScatter(p) => smallvec![None, Some(g.max_pool2d_gather(xs[0], c_bar, p)?)],
        PoolOp::MaxGather(p) => smallvec![None, Some(g.max_pool2d_scatter(xs[0], c_bar, p)?)],
        PoolOp::Avg(p) => {
            let hw = fixed_hw(op.name(), g.name(xs[0])?, g.shape(xs[0])?)?;
            smallvec![Some(g.avg_pool2d_grad(c_bar, p, hw)?)]
        }
        PoolOp::AvgGrad { pool, .. } => smallvec![Some(g.avg_pool2d(c_bar, pool)?)],
    })
}
// ANCHOR_END: pool_vjp

impl<F: Element> Graph<F> {
    /// Max pooling of an NHWC image: Keras' `MaxPooling2D`. Ties go to the first maximum in
    /// row-major window order (see the [module](crate::ops::pool) doc).
    ///
    /// The max pooling of a ReLU (`x` built by [`Graph::relu`] from `z`) is built as
    /// `relu(max_pool2d(z))`: the same values and the same gradients of every order, with the
    /// ReLU on the pooled elements (a quarter of them for a 2x2 pool) instead of all of them.
    /// ReLU is monotone, so it commutes with the maximum, and it keeps the first maximal
    /// element first: where the window's maximum is positive both forms pick the same
    /// element, and where it is not, both derivatives are 0 (ReLU's derivative at 0 is 0). A
    /// NaN is a NaN's own ReLU and takes the gradient in both forms.
    ///
    /// # Errors
    /// [`GraphError::InvalidShape`] for a rank other than 4, an unknown height or width, a zero
    /// size or stride, or a window larger than a `valid` image.
    ///
    /// ```
    /// use dendrite_graph::ops::Pool2d;
    /// let mut g = dendrite_graph::Graph::<f32>::new();
    /// let x = g.input("x", [None, Some(26), Some(26), Some(32)])?;
    /// let y = g.max_pool2d(x, Pool2d::new([2, 2]))?;
    /// assert_eq!(g.shape(y)?.to_string(), "[?, 13, 13, 32]");
    /// # Ok::<(), dendrite_graph::GraphError>(())
    /// ```
    pub fn max_pool2d(&mut self, x: NodeId, pool: Pool2d) -> Result<NodeId> {
        match self.relu_operand(x) {
            Some(z) => self.atomically(|g| {
                let pooled = g.add_op(Op::Pool(PoolOp::Max(pool)), &[z])?;
                g.relu(pooled)
            }),
            None => self.add_op(Op::Pool(PoolOp::Max(pool)), &[x]),
        }
    }

    /// Average pooling of an NHWC image (padding not counted): Keras' `AveragePooling2D`.
    ///
    /// # Errors
    /// As [`Graph::max_pool2d`].
    pub fn avg_pool2d(&mut self, x: NodeId, pool: Pool2d) -> Result<NodeId> {
        self.add_op(Op::Pool(PoolOp::Avg(pool)), &[x])
    }

    /// `S_x(y)`: `y` (shaped like `max_pool2d(x)`) added into the argmax positions of `x`.
    ///
    /// # Errors
    /// As [`Graph::max_pool2d`], and [`GraphError::IncompatibleShapes`] for a `y` of another
    /// shape.
    pub fn max_pool2d_scatter(&mut self, x: NodeId, y: NodeId, pool: Pool2d) -> Result<NodeId> {
        self.add_op(Op::Pool(PoolOp::MaxScatter(pool)), &[x, y])
    }

    /// `G_x(v)`: `v` (shaped like `x`) read at the argmax positions of `x`'s windows.
    ///
    /// # Errors
    /// As [`Graph::max_pool2d_scatter`].
    pub fn max_pool2d_gather(&mut self, x: NodeId, v: NodeId, pool: Pool2d) -> Result<NodeId> {
        self.add_op(Op::Pool(PoolOp::MaxGather(pool)), &[x, v])
    }

    /// The adjoint of [`Graph::avg_pool2d`] over an image of height and width `input_hw`.
    ///
    /// # Errors
    /// As [`Graph::max_pool2d_scatter`].
    pub fn avg_pool2d_grad(
        &mut self,
        y: NodeId,
        pool: Pool2d,
        input_hw: [usize; 2],
    ) -> Result<NodeId> {
        self.add_op(Op::Pool(PoolOp::AvgGrad { pool, input_hw }), &[y])
    }
}
