//! One gradient check, in named phases: [`Harness::prepare`] builds and compiles what the
//! check runs, then [`Harness::elementwise`] or [`Harness::directional`] compares, a
//! [`Tally`] keeping count and the worst comparison; a failed direction is then narrowed to
//! one element by [`Harness::locate`].

use super::harness::Harness;
use super::{free_name, multi_index, random_like, set_flat};
use super::{CheckConfig, CheckMode, Comparison, Contraction, GradCheckReport, Location};
use crate::error::Result;
use crate::reverse::vjp;
use dendrite_graph::{compile, Graph, NodeId, Plan};
use ndarray::{ArrayD, IxDyn};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// What a check runs: the function's plan, the VJP's plan and its cotangent input.
pub(super) struct Prepared {
    f_plan: Plan<f64>,
    g_plan: Plan<f64>,
    ct_name: String,
    /// The output's run-time shape.
    out_shape: Vec<usize>,
    /// Whether the output has one element (then the cotangent is 1, not random).
    scalar: bool,
    /// The finite-difference step.
    eps: f64,
}

/// The count of comparisons and failures, and the worst comparison so far.
struct Tally<'c> {
    config: &'c CheckConfig,
    report: GradCheckReport,
    worst_badness: f64,
}

impl<'c> Tally<'c> {
    fn new(config: &'c CheckConfig, mode: CheckMode) -> Self {
        Tally {
            config,
            report: GradCheckReport {
                mode,
                eps: config.eps,
                rtol: config.rtol,
                atol: config.atol,
                checked: 0,
                failures: 0,
                worst: None,
                located: None,
            },
            worst_badness: f64::NEG_INFINITY,
        }
    }

    /// Counts `cmp`; returns whether it is the new worst.
    fn record(&mut self, cmp: Comparison) -> bool {
        let b = self.config.badness(cmp.analytic, cmp.numeric);
        self.report.checked += 1;
        if b > 1.0 {
            self.report.failures += 1;
        }
        let worst = b > self.worst_badness;
        if worst {
            self.worst_badness = b;
            self.report.worst = Some(cmp);
        }
        worst
    }
}

/// The random vectors and analytic products of one direction.
struct Direction {
    c: ArrayD<f64>,
    tangents: Vec<ArrayD<f64>>,
    analytic: Vec<ArrayD<f64>>,
}

impl Harness<'_, '_> {
    /// The whole check: prepare, choose the mode, compare, locate a failed direction.
    pub(super) fn check(
        &mut self,
        g: &mut Graph<f64>,
        output: NodeId,
        wrt: &[NodeId],
        config: &CheckConfig,
    ) -> Result<GradCheckReport> {
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        let mut prepared = self.prepare(g, output, wrt, config.eps)?;
        let total: usize = self.originals.iter().map(|o| o.len()).sum();
        let mode = match config.mode {
            CheckMode::Auto if total <= config.elementwise_limit => CheckMode::Elementwise,
            CheckMode::Auto => CheckMode::Directional {
                trials: config.auto_trials,
            },
            mode => mode,
        };
        let mut tally = Tally::new(config, mode);
        match mode {
            CheckMode::Elementwise | CheckMode::Auto => {
                self.elementwise(g, &mut prepared, &mut rng, &mut tally)?;
            }
            CheckMode::Directional { trials } => {
                let worst = self.directional(g, &mut prepared, &mut rng, &mut tally, trials)?;
                if let (Some(direction), false) = (worst, tally.report.passed()) {
                    tally.report.located = self.locate(g, &mut prepared, &direction)?;
                }
            }
        }
        Ok(tally.report)
    }

    /// Compiles the function, adds a cotangent input and the VJP, compiles that.
    fn prepare(
        &self,
        g: &mut Graph<f64>,
        output: NodeId,
        wrt: &[NodeId],
        eps: f64,
    ) -> Result<Prepared> {
        let mut f_plan = compile(g, &[output])?;
        let out_shape = f_plan
            .run(g, &self.feed_list(&[]))?
            .get(0)?
            .shape()
            .to_vec();
        let declared = g.shape(output)?.clone();
        let ct_name = free_name(g, "check/cotangent");
        let ct = g.input(&ct_name, declared.clone())?;
        let grads = vjp(g, output, wrt, ct)?;
        Ok(Prepared {
            f_plan,
            g_plan: compile(g, &grads)?,
            ct_name,
            out_shape,
            scalar: declared.size() == Some(1),
            eps,
        })
    }

    /// Every element of every `wrt` node: `±ε` against the VJP's element.
    fn elementwise(
        &mut self,
        g: &mut Graph<f64>,
        p: &mut Prepared,
        rng: &mut ChaCha8Rng,
        tally: &mut Tally<'_>,
    ) -> Result<()> {
        let (c, contraction) = if p.scalar {
            (ArrayD::ones(IxDyn(&p.out_shape)), Contraction::Exact)
        } else {
            (random_like(rng, &p.out_shape), Contraction::Cotangent)
        };
        let analytic = self.analytic(g, &mut p.g_plan, &p.ct_name, &c)?;
        for (k, grad_k) in analytic.iter().enumerate() {
            for (i, &a) in grad_k.iter().enumerate() {
                tally.record(self.element(g, p, &c, (k, i), a, contraction)?);
            }
        }
        Ok(())
    }

    /// Element `i` of `wrt` node `k`: the analytic `a` against `⟨c, central difference⟩`.
    fn element(
        &mut self,
        g: &mut Graph<f64>,
        p: &mut Prepared,
        c: &ArrayD<f64>,
        (k, i): (usize, usize),
        a: f64,
        contraction: Contraction,
    ) -> Result<Comparison> {
        let eps = p.eps;
        let x0 = self.originals[k].iter().nth(i).copied().unwrap_or_default();
        self.edit(g, k, |mut v| set_flat(&mut v, i, x0 + eps))?;
        let plus = self.contract(g, &mut p.f_plan, c)?;
        self.edit(g, k, |mut v| set_flat(&mut v, i, x0 - eps))?;
        let minus = self.contract(g, &mut p.f_plan, c)?;
        self.edit(g, k, |mut v| set_flat(&mut v, i, x0))?;
        let location = Location::Element {
            node: self.names[k].clone(),
            index: multi_index(i, self.originals[k].shape()),
        };
        let numeric = (plus - minus) / (2.0 * eps);
        Ok(Comparison::new(location, contraction, a, numeric))
    }

    /// `trials` random directions; returns the worst one, to be located if it failed.
    fn directional(
        &mut self,
        g: &mut Graph<f64>,
        p: &mut Prepared,
        rng: &mut ChaCha8Rng,
        tally: &mut Tally<'_>,
        trials: usize,
    ) -> Result<Option<Direction>> {
        let mut worst = None;
        for trial in 0..trials {
            let c = random_like(rng, &p.out_shape);
            let tangents: Vec<ArrayD<f64>> = self
                .originals
                .iter()
                .map(|o| random_like(rng, o.shape()))
                .collect();
            let analytic = self.analytic(g, &mut p.g_plan, &p.ct_name, &c)?;
            let direction = Direction {
                c,
                tangents,
                analytic,
            };
            let masks: Vec<_> = (0..self.originals.len()).map(|_| None).collect();
            let (a, n) = self.along(g, p, &direction, &masks)?;
            let location = Location::Direction { trial };
            let cmp = Comparison::new(location, Contraction::CotangentAndTangent, a, n);
            if tally.record(cmp) {
                worst = Some(direction);
            }
        }
        Ok(worst)
    }

    /// Analytic and numeric `⟨c, J t⟩` along the direction's tangent restricted by `masks`
    /// (per `wrt` node: `None` keeps it whole, else the flat range kept; out of it, 0).
    fn along(
        &mut self,
        g: &mut Graph<f64>,
        p: &mut Prepared,
        d: &Direction,
        masks: &[Option<std::ops::Range<usize>>],
    ) -> Result<(f64, f64)> {
        let kept = |k: usize, i: usize| masks[k].as_ref().is_none_or(|r| r.contains(&i));
        let mut analytic = 0.0;
        for (k, (a, t)) in d.analytic.iter().zip(&d.tangents).enumerate() {
            let products = a.iter().zip(t.iter()).enumerate();
            analytic += products
                .filter(|(i, _)| kept(k, *i))
                .map(|(_, (a, t))| a * t)
                .sum::<f64>();
        }
        let mut side = |h: &mut Self, g: &mut Graph<f64>, step: f64| -> Result<f64> {
            for (k, t) in d.tangents.iter().enumerate() {
                h.edit(g, k, |mut v| {
                    let flat = v.iter_mut().zip(t.iter()).enumerate();
                    flat.filter(|(i, _)| kept(k, *i))
                        .for_each(|(_, (x, &t))| *x += step * t)
                })?;
            }
            let value = h.contract(g, &mut p.f_plan, &d.c)?;
            h.restore(g)?;
            Ok(value)
        };
        let plus = side(self, g, p.eps)?;
        let minus = side(self, g, -p.eps)?;
        Ok((analytic, (plus - minus) / (2.0 * p.eps)))
    }

    /// Narrows a failed direction to one element: the error `analytic - numeric` is linear in
    /// the tangent, so halving the tangent's support and keeping the half with the larger
    /// error finds an element responsible in `log₂ n` steps (two runs each); that element is
    /// then compared on its own.
    fn locate(
        &mut self,
        g: &mut Graph<f64>,
        p: &mut Prepared,
        d: &Direction,
    ) -> Result<Option<Comparison>> {
        let n = self.originals.len();
        let error = |(a, n): (f64, f64)| (a - n).abs();
        // First the `wrt` node, then the element within it.
        let mut best: Option<(f64, usize)> = None;
        for k in 0..n {
            let masks: Vec<_> = (0..n).map(|j| (j != k).then_some(0..0)).collect();
            let e = error(self.along(g, p, d, &masks)?);
            if best.is_none_or(|(b, _)| e > b) {
                best = Some((e, k));
            }
        }
        let Some((_, k)) = best else { return Ok(None) };
        let mut range = 0..self.originals[k].len();
        while range.len() > 1 {
            let mid = range.start + range.len() / 2;
            let mut masks: Vec<_> = (0..n).map(|_| Some(0..0)).collect();
            masks[k] = Some(range.start..mid);
            let lower = error(self.along(g, p, d, &masks)?);
            masks[k] = Some(mid..range.end);
            let upper = error(self.along(g, p, d, &masks)?);
            range = if lower >= upper {
                range.start..mid
            } else {
                mid..range.end
            };
        }
        let i = range.start;
        let a = d.analytic[k].iter().nth(i).copied().unwrap_or_default();
        Ok(Some(self.element(
            g,
            p,
            &d.c,
            (k, i),
            a,
            Contraction::Cotangent,
        )?))
    }
}
