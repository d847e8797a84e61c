//! Each optimizer's first steps against updates computed by hand, and the learning-rate
//! schedules.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use dendrite_nn::{Adam, AdamW, NnError, Optimizer, RmsProp, Schedule, Sgd};

/// Applies `steps` updates with the given gradients (one per step) to a one-element parameter
/// starting at `w0`, returning the parameter after each step.
fn run(opt: &mut dyn Optimizer<f64>, w0: f64, grads: &[f64]) -> Vec<f64> {
    opt.prepare(&[1]).unwrap();
    let mut w = [w0];
    grads
        .iter()
        .enumerate()
        .map(|(t, &g)| {
            opt.begin_step(t as u64);
            opt.update(0, &mut w, &[g]).unwrap();
            w[0]
        })
        .collect()
}

fn close(a: f64, b: f64) {
    assert!((a - b).abs() <= 1e-14 * (1.0 + b.abs()), "{a} != {b}");
}

#[test]
fn sgd_plain_momentum_and_nesterov() {
    let w = run(&mut Sgd::new(0.1), 1.0, &[0.5, 0.5]);
    close(w[0], 0.95);
    close(w[1], 0.90);

    // v1 = -0.05, w1 = 0.95; v2 = 0.9 v1 - 0.05 = -0.095, w2 = 0.855
    let w = run(&mut Sgd::new(0.1).momentum(0.9), 1.0, &[0.5, 0.5]);
    close(w[0], 0.95);
    close(w[1], 0.855);

    // Nesterov: w += μ v - lr g with the new v: w1 = 1 - 0.045 - 0.05, w2 = w1 - 0.0855 - 0.05
    let w = run(
        &mut Sgd::new(0.1).momentum(0.9).nesterov(true),
        1.0,
        &[0.5, 0.5],
    );
    close(w[0], 0.905);
    close(w[1], 0.905 - 0.0855 - 0.05);
}

#[test]
fn adam_with_bias_correction() {
    let (lr, b1, b2, eps) = (1e-3, 0.9, 0.999, 1e-7);
    let grads = [0.5, -0.25, 1.0];
    let got = run(&mut Adam::default(), 1.0, &grads);
    let (mut m, mut v, mut w) = (0.0, 0.0, 1.0);
    for (t, &g) in grads.iter().enumerate() {
        let t = (t + 1) as f64;
        m += (1.0 - b1) * (g - m);
        v += (1.0 - b2) * (g * g - v);
        let alpha = lr * (1.0 - f64::powf(b2, t)).sqrt() / (1.0 - f64::powf(b1, t));
        w -= alpha * m / (v.sqrt() + eps);
        close(got[t as usize - 1], w);
    }
    // With the bias correction the first step moves by almost exactly lr, whatever |g|.
    assert!((1.0 - got[0] - lr).abs() < 1e-6);
    let big = run(&mut Adam::default(), 0.0, &[1e6]);
    assert!((big[0] + lr).abs() < 1e-9);
}

#[test]
fn adam_hyperparameters_change_the_step() {
    let got = run(
        &mut Adam::new(0.01).betas(0.5, 0.75).epsilon(1e-3),
        0.0,
        &[2.0],
    );
    let (m, v) = (0.5 * 2.0, 0.25 * 4.0);
    let alpha = 0.01 * (1.0_f64 - 0.75).sqrt() / (1.0 - 0.5);
    close(got[0], -alpha * m / (f64::sqrt(v) + 1e-3));
}

#[test]
fn adamw_decays_then_steps() {
    let (lr, wd) = (0.01, 0.1);
    let got = run(&mut AdamW::new(lr).weight_decay(wd), 2.0, &[0.5, 0.5]);
    let (b1, b2, eps) = (0.9, 0.999, 1e-7);
    let (mut m, mut v, mut w) = (0.0, 0.0, 2.0_f64);
    for t in 1..=2 {
        let g = 0.5;
        w -= lr * wd * w;
        m += (1.0 - b1) * (g - m);
        v += (1.0 - b2) * (g * g - v);
        let alpha = lr * (1.0 - f64::powi(b2, t)).sqrt() / (1.0 - f64::powi(b1, t));
        w -= alpha * m / (v.sqrt() + eps);
        close(got[t as usize - 1], w);
    }
}

#[test]
fn rmsprop_with_and_without_momentum() {
    let (lr, rho, eps) = (0.01, 0.9, 1e-7);
    let grads = [2.0, -1.0];
    let got = run(&mut RmsProp::new(lr), 1.0, &grads);
    let (mut v, mut w) = (0.0, 1.0_f64);
    for (t, &g) in grads.iter().enumerate() {
        v = rho * v + (1.0 - rho) * g * g;
        w -= lr * g / (v + eps).sqrt();
        close(got[t], w);
    }
    let got = run(&mut RmsProp::new(lr).momentum(0.5), 1.0, &grads);
    let (mut v, mut m, mut w) = (0.0, 0.0, 1.0_f64);
    for (t, &g) in grads.iter().enumerate() {
        v = rho * v + (1.0 - rho) * g * g;
        m = 0.5 * m + lr * g / (v + eps).sqrt();
        w -= m;
        close(got[t], w);
    }
}

#[test]
fn updates_are_elementwise_over_slices() {
    let mut sgd = Sgd::<f32>::new(0.5);
    sgd.prepare(&[3, 2]).unwrap();
    sgd.begin_step(0);
    let mut a = [1.0_f32, 2.0, 3.0];
    let mut b = [0.0_f32, 0.0];
    sgd.update(0, &mut a, &[2.0, 2.0, 2.0]).unwrap();
    sgd.update(1, &mut b, &[1.0, -1.0]).unwrap();
    assert_eq!(a, [0.0, 1.0, 2.0]);
    assert_eq!(b, [-0.5, 0.5]);
}

#[test]
fn schedules_follow_their_formulas() {
    let step = Schedule::Step {
        initial: 0.1,
        factor: 0.5,
        every: 3,
    };
    assert_eq!(
        [step.at(0), step.at(2), step.at(3), step.at(6)],
        [0.1, 0.1, 0.05, 0.025]
    );

    let smooth = Schedule::Exponential {
        initial: 1.0,
        rate: 0.5,
        steps: 4,
        staircase: false,
    };
    close(smooth.at(2), 0.5_f64.sqrt());
    close(smooth.at(4), 0.5);
    let stairs = Schedule::Exponential {
        initial: 1.0,
        rate: 0.5,
        steps: 4,
        staircase: true,
    };
    assert_eq!([stairs.at(3), stairs.at(4), stairs.at(9)], [1.0, 0.5, 0.25]);

    let cosine = Schedule::Cosine {
        initial: 0.2,
        steps: 10,
        alpha: 0.1,
    };
    close(cosine.at(0), 0.2);
    close(cosine.at(5), 0.2 * (0.9 * 0.5 + 0.1));
    close(cosine.at(10), 0.02);
    close(cosine.at(50), 0.02);
    assert_eq!(Schedule::from(0.3).at(1000), 0.3);
}

#[test]
fn optimizers_use_their_schedule_per_step() {
    let schedule = Schedule::Step {
        initial: 1.0,
        factor: 0.1,
        every: 1,
    };
    let mut sgd = Sgd::<f64>::new(schedule);
    let w = run(&mut sgd, 0.0, &[1.0, 1.0, 1.0]);
    close(w[0], -1.0);
    close(w[1], -1.1);
    close(w[2], -1.11);
    close(Optimizer::<f64>::learning_rate(&sgd), 0.01);
}

#[test]
fn bad_hyperparameters_are_rejected() {
    let err = Optimizer::<f32>::validate(&Adam::<f32>::default().betas(1.0, 0.999)).unwrap_err();
    assert!(matches!(err, NnError::Hyperparameter { name: "beta1", .. }));
    assert!(Optimizer::<f32>::validate(&Sgd::<f32>::new(-0.1)).is_err());
    assert!(Optimizer::<f32>::validate(&Sgd::<f32>::new(f64::NAN)).is_err());
    assert!(Optimizer::<f32>::validate(&RmsProp::<f32>::default().epsilon(0.0)).is_err());
    assert!(Optimizer::<f32>::validate(&AdamW::<f32>::default().weight_decay(-1.0)).is_err());
    let bad = Schedule::Cosine {
        initial: 0.1,
        steps: 0,
        alpha: 0.0,
    };
    assert!(bad.validate().is_err());
}

#[test]
fn unprepared_or_mismatched_state_is_an_error() {
    let mut adam = Adam::<f32>::default();
    adam.prepare(&[2]).unwrap();
    adam.begin_step(0);
    let mut w = [0.0_f32; 2];
    let err = adam.update(1, &mut w, &[0.0; 2]).unwrap_err();
    assert!(matches!(err, NnError::OptimizerState { index: 1, .. }));
    assert!(adam.update(0, &mut w, &[0.0; 3]).is_err());
    let mut three = [0.0_f32; 3];
    assert!(adam.update(0, &mut three, &[0.0; 3]).is_err());
}

/// A parameter long enough for the vector loops (eight `f32` at a time with AVX2) and their
/// scalar tail: the fused updates must give, bit for bit, what the per-element formulas of the
/// optimizers' docs give when evaluated one element at a time in the same order.
#[test]
fn vector_updates_match_the_scalar_formulas_bit_for_bit() {
    const N: usize = 37;
    let grads: Vec<Vec<f32>> = (0..3)
        .map(|t| {
            (0..N)
                .map(|i| ((i * 7 + t * 13) % 11) as f32 * 0.37 - 1.5)
                .collect()
        })
        .collect();
    let w0: Vec<f32> = (0..N).map(|i| (i as f32 * 0.61).sin()).collect();
    let fused = |opt: &mut dyn Optimizer<f32>| {
        opt.prepare(&[N]).unwrap();
        let mut w = w0.clone();
        for (t, g) in grads.iter().enumerate() {
            opt.begin_step(t as u64);
            opt.update(0, &mut w, g).unwrap();
        }
        w
    };
    let bits = |w: &[f32]| w.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    let alpha = |lr: f64, t: usize| {
        let t = (t + 1) as f64;
        (lr * (1.0 - 0.999_f64.powf(t)).sqrt() / (1.0 - 0.9_f64.powf(t))) as f32
    };

    // Adam and AdamW (decay 0.1, learning rate 0.01).
    for decay in [0.0_f64, 0.1] {
        let lr = 0.01;
        let got = if decay > 0.0 {
            fused(&mut AdamW::<f32>::new(lr).weight_decay(decay))
        } else {
            fused(&mut Adam::<f32>::new(lr))
        };
        let (b1, b2, eps) = ((1.0 - 0.9_f64) as f32, (1.0 - 0.999_f64) as f32, 1e-7_f32);
        let (mut w, mut m, mut v) = (w0.clone(), vec![0.0_f32; N], vec![0.0_f32; N]);
        for (t, g) in grads.iter().enumerate() {
            let a = alpha(lr, t);
            for i in 0..N {
                if decay > 0.0 {
                    w[i] -= (lr * decay) as f32 * w[i];
                }
                m[i] = m[i] + (g[i] - m[i]) * b1;
                v[i] = v[i] + (g[i] * g[i] - v[i]) * b2;
                w[i] -= a * m[i] / (v[i].sqrt() + eps);
            }
        }
        assert_eq!(bits(&got), bits(&w), "adam with decay {decay}");
    }

    // SGD: plain, momentum, Nesterov.
    let (lr, mu) = (0.1_f32, 0.9_f32);
    for (momentum, nesterov) in [(0.0, false), (0.9, false), (0.9, true)] {
        let got = fused(&mut Sgd::<f32>::new(0.1).momentum(momentum).nesterov(nesterov));
        let (mut w, mut v) = (w0.clone(), vec![0.0_f32; N]);
        for g in &grads {
            for i in 0..N {
                if momentum == 0.0 {
                    w[i] -= lr * g[i];
                } else if nesterov {
                    v[i] = mu * v[i] - lr * g[i];
                    w[i] = w[i] + mu * v[i] - lr * g[i];
                } else {
                    v[i] = mu * v[i] - lr * g[i];
                    w[i] += v[i];
                }
            }
        }
        assert_eq!(bits(&got), bits(&w), "sgd momentum {momentum} {nesterov}");
    }

    // RMSprop without and with momentum.
    let (lr, rho, eps) = (0.01_f32, 0.9_f32, 1e-7_f32);
    let one_minus_rho = (1.0 - 0.9_f64) as f32;
    for momentum in [0.0_f32, 0.5] {
        let got = fused(&mut RmsProp::<f32>::new(0.01).momentum(f64::from(momentum)));
        let (mut w, mut v, mut m) = (w0.clone(), vec![0.0_f32; N], vec![0.0_f32; N]);
        for g in &grads {
            for i in 0..N {
                v[i] = rho * v[i] + one_minus_rho * g[i] * g[i];
                if momentum == 0.0 {
                    w[i] -= lr * g[i] / (v[i] + eps).sqrt();
                } else {
                    m[i] = momentum * m[i] + lr * g[i] / (v[i] + eps).sqrt();
                    w[i] -= m[i];
                }
            }
        }
        assert_eq!(bits(&got), bits(&w), "rmsprop momentum {momentum}");
    }
}
