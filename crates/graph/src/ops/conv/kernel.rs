//! The convolution kernels: im2col, GEMM, col2im, one image at a time.

#[cfg(target_arch = "x86_64")]
use super::direct;
use super::Geometry;
use crate::error::{GraphError, Result};
use crate::gemm::{matmul_add_into, matmul_into};
use crate::limits::grow_to;
use crate::team::Team;
use crate::Element;
use ndarray::{ArrayView2, ArrayViewMut2, ShapeBuilder};
use std::sync::atomic::{AtomicBool, Ordering};

/// One run of a convolution kernel: its geometry, the run's batch size (it bounds the group of
/// images a product takes), names for errors, and the threads it may use.
pub(super) struct Run<'a> {
    pub geo: &'a Geometry,
    pub batch: usize,
    pub op: &'static str,
    pub node: &'a str,
    pub team: Team,
}

impl Run<'_> {
    /// Grows the step's scratch to `len` elements and returns them.
    pub(super) fn scratch<'s, F: Element>(
        &self,
        scratch: &'s mut Vec<F>,
        len: usize,
    ) -> Result<&'s mut [F]> {
        grow_to(scratch, len, self.op, self.node, &[len])?;
        Ok(&mut scratch[..len])
    }

    pub(super) fn internal(&self) -> GraphError {
        GraphError::Internal {
            op: self.op,
            node: self.node.to_owned(),
            what: "a buffer disagrees with the convolution's geometry",
        }
    }

    /// `per_worker` elements for each worker of the team, within the tensor size limit.
    pub(super) fn per_team<F: Element>(&self, per_worker: usize) -> Result<usize> {
        crate::limits::check_size::<F>(self.op, self.node, &[per_worker, self.team.workers()])
    }

    /// Images per product: enough that one GEMM sees at least [`GROUP_ROWS`] rows (a single
    /// small image's product is dominated by the GEMM's edges), but within [`GROUP_BYTES`] of
    /// im2col scratch, which keeps the columns in L2 between im2col and the product and the
    /// product in the crate's own kernels (below the `gemm` crate's size, whose packing
    /// allocates). It depends on the geometry and the batch only, never on the thread count,
    /// so sums over a group are the same on every run.
    pub(super) fn group<F>(&self) -> usize {
        let g = self.geo;
        let per_image = (g.rows() * g.taps())
            .saturating_mul(std::mem::size_of::<F>())
            .max(1);
        let by_rows = GROUP_ROWS.div_ceil(g.rows().max(1));
        let by_bytes = (GROUP_BYTES / per_image).max(1);
        by_rows.min(by_bytes).clamp(1, self.batch.max(1))
    }

    /// Copies the windows of `images` (a whole number of them) into `cols` and returns
    /// `im2col(images)` as a `[images · OH·OW, KH·KW·C]` view.
    fn columns<'c, F: Element>(
        &self,
        images: &[F],
        cols: &'c mut [F],
    ) -> Option<ArrayView2<'c, F>> {
        let g = self.geo;
        let (rows, taps) = (g.rows(), g.taps());
        let n = images.len() / g.image().max(1);
        let cols = cols.get_mut(..n * rows * taps)?;
        for (image, cols) in images
            .chunks_exact(g.image())
            .zip(cols.chunks_exact_mut(rows * taps))
        {
            im2col(g, image, cols);
        }
        ArrayView2::from_shape((n * rows, taps), &*cols).ok()
    }

    /// `y = conv2d(x, w)`, plus `bias` on every output row when there is one: per group of
    /// images, `y = im2col(x) · w`, one product for the group, then the bias added while the
    /// group's rows are in cache; the groups are the team's tasks.
    pub fn conv2d<F: Element>(
        &self,
        x: &[F],
        w: &[F],
        bias: Option<&[F]>,
        y: &mut [F],
        scratch: &mut Vec<F>,
    ) -> Result<()> {
        let g = self.geo;
        let (rows, taps, group) = (g.rows(), g.taps(), self.group::<F>());
        let per_worker = group * rows * taps;
        let cols = self.scratch(scratch, self.per_team::<F>(per_worker)?)?;
        let w = ArrayView2::from_shape((taps, g.o), w).map_err(|_| self.internal())?;
        let failed = AtomicBool::new(false);
        let out_chunk = group * rows * g.o;
        self.team
            .for_chunks(y, out_chunk, cols, per_worker, &|task, y, cols| {
                let n = y.len() / (rows * g.o).max(1);
                let images = x
                    .get(task * group * g.image()..)
                    .and_then(|x| x.get(..n * g.image()));
                #[cfg(target_arch = "x86_64")]
                {
                    let operands = images.zip(w.as_slice());
                    if operands.is_some_and(|(x, w)| direct::convolve(g, x, w, bias, y)) {
                        return;
                    }
                }
                let a = images.and_then(|images| self.columns(images, cols));
                match (a, ArrayViewMut2::from_shape((n * rows, g.o), &mut *y)) {
                    (Some(a), Ok(mut c)) => matmul_into(&a, &w, &mut c),
                    _ => return failed.store(true, Ordering::Relaxed),
                }
                if let Some(bias) = bias {
                    for row in y.chunks_exact_mut(g.o.max(1)) {
                        add_into(row, bias);
                    }
                }
            });
        self.check(&failed)
    }

    pub(super) fn check(&self, failed: &AtomicBool) -> Result<()> {
        match failed.load(Ordering::Relaxed) {
            true => Err(self.internal()),
            false => Ok(()),
        }
    }

    /// `x̄ = T(ȳ, w)`: per group of images, `col2im(ȳ · wᵀ)`; the groups are the team's tasks.
    /// The kernel is transposed once into the scratch, so the product reads both operands row
    /// by row.
    pub fn input_grad<F: Element>(
        &self,
        y: &[F],
        w: &[F],
        x: &mut [F],
        scratch: &mut Vec<F>,
    ) -> Result<()> {
        let g = self.geo;
        let (rows, taps, group) = (g.rows(), g.taps(), self.group::<F>());
        let per_worker = group * rows * taps;
        let space = self.scratch(scratch, taps * g.o + self.per_team::<F>(per_worker)?)?;
        let (w_t, cols) = space.split_at_mut(taps * g.o);
        let w = ArrayView2::from_shape((taps, g.o), w).map_err(|_| self.internal())?;
        ArrayViewMut2::from_shape((g.o, taps), &mut *w_t)
            .map_err(|_| self.internal())?
            .assign(&w.t());
        let w_t = ArrayView2::from_shape((g.o, taps), &*w_t).map_err(|_| self.internal())?;
        let failed = AtomicBool::new(false);
        self.team.for_chunks(
            x,
            group * g.image(),
            cols,
            per_worker,
            &|task, images, cols| {
                let n = images.len() / g.image().max(1);
                let y = y
                    .get(task * group * rows * g.o..)
                    .and_then(|y| y.get(..n * rows * g.o));
                let a = y.and_then(|y| ArrayView2::from_shape((n * rows, g.o), y).ok());
                let cols = cols.get_mut(..n * rows * taps);
                let Some((a, cols)) = a.zip(cols) else {
                    return failed.store(true, Ordering::Relaxed);
                };
                let Ok(mut c) = ArrayViewMut2::from_shape((n * rows, taps), &mut *cols) else {
                    return failed.store(true, Ordering::Relaxed);
                };
                matmul_into(&a, &w_t, &mut c);
                for (cols, image) in cols
                    .chunks_exact(rows * taps)
                    .zip(images.chunks_exact_mut(g.image()))
                {
                    col2im(g, cols, image);
                }
            },
        );
        self.check(&failed)
    }

    /// `w̄ = K(x, ȳ) = Σ_images im2col(x)ᵀ · ȳ`. The groups of images are dealt, in order, to
    /// a fixed number of partial sums ([`PARTIALS`], fewer for a small batch), each one a
    /// team task that adds its groups' products in order (see [`matmul_add_into`]); then
    /// `w̄ = ((p₀ + p₁) + p₂) + …`. The partials depend on the batch and the geometry, never on
    /// the thread count, so neither do the bits of `w̄`.
    pub fn kernel_grad<F: Element>(
        &self,
        x: &[F],
        y: &[F],
        w: &mut [F],
        scratch: &mut Vec<F>,
    ) -> Result<()> {
        self.kernel_grad_by(x, w, scratch, &|images, first, space, sum| {
            self.add_group(images, y, first, space, sum)
        })
    }

    /// [`Run::kernel_grad`]'s partial sums and their total, with `add(images, first, space,
    /// sum)` adding one group's product (the images starting at image `first`) to `sum`, in
    /// the worker's `space`; `false` from `add` is an internal error.
    pub(super) fn kernel_grad_by<F: Element>(
        &self,
        x: &[F],
        w: &mut [F],
        scratch: &mut Vec<F>,
        add: &GroupSum<'_, F>,
    ) -> Result<()> {
        let g = self.geo;
        let (rows, taps, group) = (g.rows(), g.taps(), self.group::<F>());
        let groups = self.batch.div_ceil(group);
        let partials = PARTIALS.min(groups).max(1);
        let size = taps * g.o;
        let per_worker = group * rows * taps + size;
        let space = self.scratch(scratch, partials * size + self.per_team::<F>(per_worker)?)?;
        let (sums, workers) = space.split_at_mut(partials * size);
        let failed = AtomicBool::new(false);
        self.team
            .for_chunks(sums, size, workers, per_worker, &|p, sum, space| {
                sum.fill(F::zero());
                let (first, last) = (p * groups / partials, (p + 1) * groups / partials);
                for k in first..last {
                    let images = x
                        .get(k * group * g.image()..)
                        .map(|x| &x[..(group * g.image()).min(x.len())]);
                    let ok = images.is_some_and(|images| add(images, k * group, space, sum));
                    if !ok {
                        failed.store(true, Ordering::Relaxed);
                    }
                }
            });
        self.check(&failed)?;
        let (first, rest) = sums.split_at(size);
        w.copy_from_slice(first);
        // A kernel's worth of sums (`KH·KW·C·O`): added on this thread.
        add_partials(Team::ONE, w, rest);
        Ok(())
    }

    /// `sum += im2col(images)ᵀ · ȳ[those images]`, the images starting at image `first`.
    fn add_group<F: Element>(
        &self,
        images: &[F],
        y: &[F],
        first: usize,
        space: &mut [F],
        sum: &mut [F],
    ) -> bool {
        let g = self.geo;
        let (rows, taps) = (g.rows(), g.taps());
        let (cols, temp) = space.split_at_mut(self.group::<F>() * rows * taps);
        let n = images.len() / g.image().max(1);
        #[cfg(target_arch = "x86_64")]
        {
            let y_group = y
                .get(first * rows * g.o..)
                .and_then(|y| y.get(..n * rows * g.o));
            if y_group.is_some_and(|y| direct::add_kernel_grad(g, images, y, sum)) {
                return true;
            }
        }
        if self.columns(images, cols).is_none() {
            return false;
        }
        // im2col(x)ᵀ, read through its strides: element (t, r) at r·taps + t.
        let a = ArrayView2::from_shape(
            (taps, n * rows).strides((1, taps)),
            &cols[..n * rows * taps],
        );
        let y = y
            .get(first * rows * g.o..)
            .and_then(|y| y.get(..n * rows * g.o));
        let b = y.and_then(|y| ArrayView2::from_shape((n * rows, g.o), y).ok());
        let acc = ArrayViewMut2::from_shape((taps, g.o), sum);
        let p = ArrayViewMut2::from_shape((taps, g.o), temp);
        match (a, b, acc, p) {
            (Ok(a), Some(b), Ok(mut acc), Ok(mut p)) => {
                matmul_add_into(&a, &b, &mut acc, &mut p);
                true
            }
            _ => false,
        }
    }
}

/// `total += p₁ + p₂ + …` for the partial sums in `rest` (each as long as `total`), added to
/// each element in order, so the bits are those of one pass after another, with `total`
/// split between `team` (a large kernel gradient's partials, such as Winograd's in the
/// transformed domain, are many passes for one thread).
pub(super) fn add_partials<F: Element>(team: Team, total: &mut [F], rest: &[F]) {
    let size = total.len();
    let chunk = size.div_ceil(team.workers()).max(1);
    team.for_chunks(total, chunk, &mut [(); 0], 0, &|task, part, _| {
        let range = task * chunk..task * chunk + part.len();
        for sum in rest.chunks_exact(size.max(1)) {
            if let Some(src) = sum.get(range.clone()) {
                add_into(part, src);
            }
        }
    });
}

/// Adds one group's kernel gradient to a partial sum: see [`Run::kernel_grad_by`].
pub(super) type GroupSum<'a, F> = dyn Fn(&[F], usize, &mut [F], &mut [F]) -> bool + Sync + 'a;

/// Partial sums of a kernel gradient (see [`Run::kernel_grad`]): enough tasks to share
/// between [`MAX_THREADS`](crate::MAX_THREADS) threads.
pub(super) const PARTIALS: usize = 8;

/// Rows (output pixels) one product should see at least: see [`Run::group`].
const GROUP_ROWS: usize = 2048;
/// The most im2col scratch a group may take, in bytes: with the kernel operand, within a
/// 512 KiB L2 (the measurements are on the book's performance page).
const GROUP_BYTES: usize = 384 << 10;

/// Where window row `(o, th)` of an image row reads one contiguous run of `k·c` elements: the
/// run's first input column, when the axis has no dilation and the whole row is inside.
#[inline]
fn contiguous_run(aw: &crate::ops::window::Axis1, ow: usize) -> Option<usize> {
    let first = aw.source(ow, 0)?;
    (aw.d == 1 && first + aw.k <= aw.n).then_some(first)
}

/// Copies the windows of one image as the rows of `cols` (`[OH·OW, KH·KW·C]`), zeros where a
/// window reads padding. A window row inside the image is one copy of `KW·C` elements.
fn im2col<F: Element>(g: &Geometry, image: &[F], cols: &mut [F]) {
    if im2col_triples(g, image, cols) {
        return;
    }
    let ([ah, aw], c) = (g.axes, g.c);
    let run = aw.k * c;
    let mut rows = cols.chunks_exact_mut(run);
    for oh in 0..ah.out {
        for ow in 0..aw.out {
            let inside = contiguous_run(&aw, ow);
            for th in 0..ah.k {
                let Some(dst) = rows.next() else { return };
                let Some(ih) = ah.source(oh, th) else {
                    dst.fill(F::zero());
                    continue;
                };
                if let Some(iw) = inside {
                    let start = (ih * aw.n + iw) * c;
                    copy_run(dst, &image[start..start + run]);
                    continue;
                }
                for (tw, dst) in dst.chunks_exact_mut(c).enumerate() {
                    match aw.source(ow, tw) {
                        Some(iw) => {
                            let start = (ih * aw.n + iw) * c;
                            dst.copy_from_slice(&image[start..start + c]);
                        }
                        None => dst.fill(F::zero()),
                    }
                }
            }
        }
    }
}

/// [`im2col`] when every window row is three values inside the image (a one-channel image
/// under 3-wide windows, the convnet's first layer): row by row of the image, each window's
/// three values copied as one fixed-size array, without the general loop's padding tests
/// for each of them. `false`, doing nothing, for other geometries.
fn im2col_triples<F: Element>(g: &Geometry, image: &[F], cols: &mut [F]) -> bool {
    let ([ah, aw], c) = (g.axes, g.c);
    let inside = |a: &crate::ops::window::Axis1| {
        a.out > 0 && a.inside(0).is_some() && a.inside(a.out - 1).is_some()
    };
    let taps = ah.k * 3;
    let fits = aw.k * c == 3
        && inside(&ah)
        && inside(&aw)
        && image.len() == ah.n * aw.n
        && cols.len() >= ah.out * aw.out * taps;
    if !fits {
        return false;
    }
    for (oh, windows) in cols
        .chunks_exact_mut(aw.out * taps)
        .take(ah.out)
        .enumerate()
    {
        for th in 0..ah.k {
            let Some(ih) = ah.source(oh, th) else {
                return false;
            };
            let row = &image[ih * aw.n..(ih + 1) * aw.n];
            for (ow, window) in windows.chunks_exact_mut(taps).enumerate() {
                let first = ow * aw.s - aw.before;
                let (Ok(dst), Some(Ok(src))) = (
                    <&mut [F; 3]>::try_from(&mut window[th * 3..th * 3 + 3]),
                    row.get(first..first + 3).map(<&[F; 3]>::try_from),
                ) else {
                    return false;
                };
                *dst = *src;
            }
        }
    }
    true
}

/// The adjoint of [`im2col`]: zeros the image, then adds every row segment of `cols` back into
/// the pixel it was read from (padding segments are dropped).
fn col2im<F: Element>(g: &Geometry, cols: &[F], image: &mut [F]) {
    let ([ah, aw], c) = (g.axes, g.c);
    let run = aw.k * c;
    image.fill(F::zero());
    let mut rows = cols.chunks_exact(run);
    for oh in 0..ah.out {
        for ow in 0..aw.out {
            let inside = contiguous_run(&aw, ow);
            for th in 0..ah.k {
                let Some(src) = rows.next() else { return };
                let Some(ih) = ah.source(oh, th) else {
                    continue;
                };
                if let Some(iw) = inside {
                    let start = (ih * aw.n + iw) * c;
                    add_into(&mut image[start..start + run], src);
                    continue;
                }
                for (tw, src) in src.chunks_exact(c).enumerate() {
                    if let Some(iw) = aw.source(ow, tw) {
                        let start = (ih * aw.n + iw) * c;
                        add_into(&mut image[start..start + c], src);
                    }
                }
            }
        }
    }
}

/// `dst = src` for one window row. A short row (a one-channel image's 3-pixel row is 12
/// bytes, an RGB one's 36) is copied as a fixed-size array, which compiles to a few moves:
/// `copy_from_slice` calls `memcpy`, whose call per 12 bytes cost as much as the product the
/// columns feed.
#[inline(always)]
fn copy_run<F: Element>(dst: &mut [F], src: &[F]) {
    fn fixed<F: Copy, const N: usize>(dst: &mut [F], src: &[F]) -> bool {
        match (<&mut [F; N]>::try_from(dst), <&[F; N]>::try_from(src)) {
            (Ok(dst), Ok(src)) => {
                *dst = *src;
                true
            }
            _ => false,
        }
    }
    let copied = match src.len() {
        1 => fixed::<F, 1>(dst, src),
        2 => fixed::<F, 2>(dst, src),
        3 => fixed::<F, 3>(dst, src),
        4 => fixed::<F, 4>(dst, src),
        5 => fixed::<F, 5>(dst, src),
        6 => fixed::<F, 6>(dst, src),
        7 => fixed::<F, 7>(dst, src),
        8 => fixed::<F, 8>(dst, src),
        9 => fixed::<F, 9>(dst, src),
        12 => fixed::<F, 12>(dst, src),
        15 => fixed::<F, 15>(dst, src),
        16 => fixed::<F, 16>(dst, src),
        _ => false,
    };
    if !copied {
        dst.copy_from_slice(src);
    }
}

/// `acc += src`, element by element.
#[inline]
pub(super) fn add_into<F: Element>(acc: &mut [F], src: &[F]) {
    for (a, &v) in acc.iter_mut().zip(src) {
        *a = *a + v;
    }
}
