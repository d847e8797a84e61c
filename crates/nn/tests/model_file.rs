//! Whole-model files: a loaded model predicts and trains on bit for bit; refused files
//! (versions, unknown layers, weights that do not fit, parts that are code) give typed errors.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use dendrite_graph::{Graph, NodeId};
use dendrite_nn::data::{synthetic_digits, Dataset};
use dendrite_nn::{
    Activation, Adam, ConfigError, Dense, FitConfig, Float, Init, Initializer, Layer, LayerNodes,
    LayerRegistry, Loss, Metric, ModelFileError, NnError, Regularizer, RmsProp, Schedule,
    Sequential, Sgd,
};
use safetensors::SafeTensors;
use serde_json::Value;
use std::path::{Path, PathBuf};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dendrite-nn-model-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn data() -> Dataset {
    synthetic_digits(192, 5).unwrap()
}

/// A model using every kind of setting a file must carry.
fn model() -> Sequential {
    let mut m = Sequential::new().with_seed(11).named("digits");
    m.add(
        Dense::new(12)
            .input_dim(784)
            .activation(Activation::LeakyRelu(0.1))
            .kernel_initializer(Initializer::HeNormal)
            .bias_initializer(Initializer::Constant(0.01))
            .kernel_regularizer(Regularizer::l2(1e-4)),
    );
    m.add(Dense::new(10).named("logits"));
    m.add(Activation::Softmax);
    let adam = Adam::new(Schedule::Exponential {
        initial: 3e-3,
        rate: 0.9,
        steps: 7,
        staircase: false,
    })
    .betas(0.85, 0.995)
    .clipnorm(2.0);
    m.compile(
        adam,
        Loss::SparseCategoricalCrossentropy,
        &[
            Metric::Accuracy,
            Metric::SparseTopKCategoricalAccuracy { k: 3 },
        ],
    )
    .unwrap();
    m
}

fn config(epochs: usize) -> FitConfig<'static> {
    FitConfig::default()
        .epochs(epochs)
        .batch_size(32)
        .seed(9)
        .verbosity(0)
        .threads(1)
}

fn bits(model: &Sequential) -> Vec<Vec<u32>> {
    let weights = model.get_weights().unwrap();
    weights
        .iter()
        .map(|w| w.iter().map(|v| v.to_bits()).collect())
        .collect()
}

#[test]
fn resuming_from_a_file_is_bit_identical_to_training_straight_through() {
    let dir = scratch("resume");
    let data = data();
    let mut straight = model();
    let history = straight.fit(&data, config(4)).unwrap();

    let mut first = model();
    first.fit(&data, config(2)).unwrap();
    let path = dir.join("half.safetensors");
    first.save(&path).unwrap();
    drop(first);
    let mut resumed = Sequential::<f32>::load(&path).unwrap();
    assert_eq!((resumed.epochs_trained(), resumed.shuffle_seed()), (2, 9));
    assert_eq!(resumed.steps_taken(), 12);
    let rest = resumed
        .fit(&data, config(4).initial_epoch(resumed.epochs_trained()))
        .unwrap();
    assert_eq!(rest.epochs(), 2);
    assert_eq!(rest.loss, history.loss[2..]);
    assert_eq!(
        rest.metrics,
        vec![
            (
                "accuracy",
                history.metric("accuracy").unwrap()[2..].to_vec()
            ),
            (
                "sparse_top_k_categorical_accuracy",
                history.metric("sparse_top_k_categorical_accuracy").unwrap()[2..].to_vec()
            )
        ]
    );
    assert_eq!(bits(&resumed), bits(&straight));
    assert_eq!(resumed.epochs_trained(), 4);
}

#[test]
fn a_loaded_model_predicts_the_same_bits_and_keeps_its_architecture() {
    let dir = scratch("predict");
    let data = data();
    let mut trained = model();
    trained.fit(&data, config(1)).unwrap();
    let path = dir.join("m.safetensors");
    trained.save(&path).unwrap();
    let mut loaded = Sequential::<f32>::load(&path).unwrap();
    assert_eq!(loaded.name(), "digits");
    assert_eq!(loaded.seed(), 11);
    assert_eq!(loaded.layer_names(), trained.layer_names());
    assert_eq!(
        loaded.loss().map(|l| l.name()),
        Some("sparse_categorical_crossentropy")
    );
    assert_eq!(loaded.learning_rate(), trained.learning_rate());
    let x = data.take(20);
    let (a, b) = (
        trained.predict(&x, 8).unwrap(),
        loaded.predict(&x, 8).unwrap(),
    );
    let a: Vec<u32> = a.iter().map(|v| v.to_bits()).collect();
    let b: Vec<u32> = b.iter().map(|v| v.to_bits()).collect();
    assert_eq!(a, b);
    assert_eq!(
        loaded.summary().unwrap().total_params(),
        trained.summary().unwrap().total_params()
    );
}

#[test]
fn built_but_uncompiled_models_and_every_optimizer_round_trip() {
    let dir = scratch("optimizers");
    let data = data();
    let path = dir.join("m.safetensors");
    let mut built = Sequential::<f64>::default();
    built.add(Dense::new(3).input_dim(784).use_bias(false));
    built.build().unwrap();
    built.save(&path).unwrap();
    let loaded = Sequential::<f64>::load(&path).unwrap();
    assert!(!loaded.is_compiled());
    assert_eq!(loaded.get_weights().unwrap(), built.get_weights().unwrap());
    // An f64 file is not an f32 model.
    let err = Sequential::<f32>::load(&path).unwrap_err();
    assert!(
        matches!(err, NnError::ModelFile(ModelFileError::Dtype { .. })),
        "{err}"
    );

    let optimizers: Vec<Box<dyn dendrite_nn::Optimizer<f32>>> = vec![
        Box::new(Sgd::new(0.05).momentum(0.9).nesterov(true).clipvalue(1.0)),
        Box::new(
            dendrite_nn::AdamW::new(1e-3)
                .weight_decay(0.01)
                .global_clipnorm(1.0),
        ),
        Box::new(
            RmsProp::new(Schedule::Cosine {
                initial: 1e-3,
                steps: 50,
                alpha: 0.1,
            })
            .momentum(0.5),
        ),
    ];
    for optimizer in optimizers {
        let make = |o: Box<dyn dendrite_nn::Optimizer<f32>>| {
            let mut m = Sequential::new();
            m.add(
                Dense::new(10)
                    .input_dim(784)
                    .activation(Activation::Softmax),
            );
            m.compile(o, Loss::SparseCategoricalCrossentropy, &[])
                .unwrap();
            m
        };
        let name = optimizer.name();
        let mut straight = make(optimizer);
        let mut half = make(optimizer_named(name));
        straight.fit(&data, config(2)).unwrap();
        half.fit(&data, config(1)).unwrap();
        half.save(&path).unwrap();
        let mut resumed = Sequential::<f32>::load(&path).unwrap();
        resumed.fit(&data, config(2).initial_epoch(1)).unwrap();
        assert_eq!(bits(&resumed), bits(&straight), "{name}");
    }
}

/// The same optimizer as in the list above, new.
fn optimizer_named(name: &str) -> Box<dyn dendrite_nn::Optimizer<f32>> {
    match name {
        "sgd" => Box::new(Sgd::new(0.05).momentum(0.9).nesterov(true).clipvalue(1.0)),
        "adamw" => Box::new(
            dendrite_nn::AdamW::new(1e-3)
                .weight_decay(0.01)
                .global_clipnorm(1.0),
        ),
        _ => Box::new(
            RmsProp::new(Schedule::Cosine {
                initial: 1e-3,
                steps: 50,
                alpha: 0.1,
            })
            .momentum(0.5),
        ),
    }
}

/// Rewrites the configuration inside a model file.
fn edit_config(path: &Path, edit: impl FnOnce(&mut Value)) {
    let bytes = std::fs::read(path).unwrap();
    let (_, metadata) = SafeTensors::read_metadata(&bytes).unwrap();
    let mut meta = metadata.metadata().clone().unwrap();
    let mut config: Value = serde_json::from_str(&meta["dendrite.model"]).unwrap();
    edit(&mut config);
    meta.insert("dendrite.model".into(), config.to_string());
    let file = SafeTensors::deserialize(&bytes).unwrap();
    let tensors: Vec<_> = file.tensors();
    let out = safetensors::serialize(tensors, &Some(meta)).unwrap();
    std::fs::write(path, out).unwrap();
}

fn saved(dir: &Path) -> PathBuf {
    let path = dir.join("m.safetensors");
    model().save(&path).unwrap();
    path
}

fn load_err(path: &Path) -> NnError {
    Sequential::<f32>::load(path).unwrap_err()
}

#[test]
fn files_of_another_version_or_not_model_files_are_refused() {
    let dir = scratch("version");
    let path = saved(&dir);
    edit_config(&path, |c| c["version"] = 2.into());
    let err = load_err(&path);
    assert!(
        matches!(
            err,
            NnError::ModelFile(ModelFileError::Version {
                found: 2,
                supported: 1,
                ..
            })
        ),
        "{err}"
    );

    let weights = dir.join("w.safetensors");
    model().save_weights(&weights).unwrap();
    let err = load_err(&weights);
    assert!(
        matches!(
            err,
            NnError::ModelFile(ModelFileError::NotAModelFile { .. })
        ),
        "{err}"
    );
    assert!(err.to_string().contains("load_weights"), "{err}");

    #[cfg(unix)]
    assert!(matches!(
        load_err(Path::new("/dev/zero")),
        NnError::NotAFile { .. }
    ));
}

#[test]
fn unknown_layers_optimizers_and_bad_settings_are_named() {
    let dir = scratch("unknown");
    let path = saved(&dir);
    edit_config(&path, |c| c["layers"][1]["kind"] = "Capsule".into());
    match load_err(&path) {
        NnError::ModelFile(ModelFileError::UnknownLayer {
            index: 1,
            kind,
            known,
            ..
        }) => {
            assert_eq!(kind, "Capsule");
            assert!(known.contains("Dense"), "{known}");
        }
        other => panic!("{other}"),
    }
    let path = saved(&dir);
    edit_config(&path, |c| {
        c["training"]["optimizer"]["name"] = "lion".into()
    });
    assert!(
        matches!(load_err(&path), NnError::ModelFile(ModelFileError::UnknownOptimizer { name, .. }) if name == "lion")
    );
    let path = saved(&dir);
    edit_config(&path, |c| {
        c["layers"][0]["config"]["units"] = "twelve".into()
    });
    match load_err(&path) {
        NnError::ModelFile(ModelFileError::Config { source, .. }) => {
            assert_eq!(source.at, "layers[0].config.units");
        }
        other => panic!("{other}"),
    }
    let path = saved(&dir);
    edit_config(&path, |c| c["training"]["loss"] = "hinge".into());
    assert!(matches!(
        load_err(&path),
        NnError::ModelFile(ModelFileError::Config { .. })
    ));
}

#[test]
fn weights_that_do_not_fit_the_configuration_are_refused() {
    let dir = scratch("fit");
    let path = saved(&dir);
    // The configuration now says 13 hidden units; the file holds weights for 12.
    edit_config(&path, |c| c["layers"][0]["config"]["units"] = 13.into());
    let err = load_err(&path);
    assert!(
        matches!(err, NnError::TensorShape { ref name, .. } if name == "dense_1/kernel"),
        "{err}"
    );
    // Without its optimizer the configuration expects no optimizer state: the state is extra.
    let path = saved(&dir);
    edit_config(&path, |c| c["training"] = Value::Null);
    let err = load_err(&path);
    assert!(
        matches!(err, NnError::UnexpectedTensor { ref name, .. } if name.starts_with("optimizer/")),
        "{err}"
    );
    // SGD without momentum keeps no state; Adam's in the file is then unexpected too, and SGD
    // with momentum keeps one buffer per parameter where Adam's file has two.
    let path = saved(&dir);
    edit_config(
        &path,
        |c| c["training"]["optimizer"] = serde_json::json!({"name": "sgd", "learning_rate": {"name": "constant", "rate": 0.1}, "momentum": 0.5, "nesterov": false, "clipping": {}}),
    );
    assert!(matches!(load_err(&path), NnError::UnexpectedTensor { .. }));
    // A truncated file is refused.
    let path = saved(&dir);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 4]).unwrap();
    assert!(matches!(load_err(&path), NnError::CorruptCheckpoint { .. }));
}

#[test]
fn custom_losses_and_unregistered_layers_cannot_be_saved() {
    let dir = scratch("custom");
    let mut m = Sequential::new();
    m.add(Dense::new(1).input_dim(2));
    let loss = Loss::custom(Squared);
    m.compile(Sgd::new(0.1), loss, &[]).unwrap();
    let err = m.save(dir.join("m.safetensors")).unwrap_err();
    assert!(
        matches!(
            err,
            NnError::ModelFile(ModelFileError::NotSerializable { what: "loss", .. })
        ),
        "{err}"
    );
    assert!(!dir.join("m.safetensors").exists());

    let mut m = Sequential::new();
    m.add(Dense::new(2).input_dim(2));
    m.add(Scale {
        factor: 2.0,
        describe: false,
    });
    m.build().unwrap();
    let err = m.save(dir.join("m.safetensors")).unwrap_err();
    assert!(
        matches!(err, NnError::ModelFile(ModelFileError::NotSerializable { what: "layer", ref name, .. }) if name == "scale_1"),
        "{err}"
    );
}

/// A loss of a user's own: code, which a model file cannot hold.
#[derive(Debug)]
struct Squared;

impl dendrite_nn::LossFn for Squared {
    fn name(&self) -> &'static str {
        "squared"
    }
    fn per_sample<F: Float>(
        &self,
        g: &mut Graph<F>,
        nodes: &LayerNodes,
        targets: NodeId,
    ) -> Result<NodeId, NnError> {
        let d = g.sub(nodes.output, targets)?;
        let s = g.mul(d, d)?;
        Ok(g.mean(s, &[1], false)?)
    }
}

/// A layer of a user's own: multiplies by a constant.
#[derive(Debug)]
struct Scale {
    factor: f64,
    describe: bool,
}

impl<F: Float> Layer<F> for Scale {
    fn kind(&self) -> &'static str {
        "Scale"
    }
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, NnError> {
        Ok(input.to_vec())
    }
    fn param_count(&self, _input: &[usize]) -> Option<usize> {
        Some(0)
    }
    fn build(
        &mut self,
        g: &mut Graph<F>,
        input: NodeId,
        _shape: &[usize],
        _init: &mut Init,
    ) -> Result<LayerNodes, NnError> {
        let c = g.scalar(self.factor);
        Ok(LayerNodes::new(g.mul(input, c)?))
    }
    fn config(&self) -> Result<Value, ConfigError> {
        match self.describe {
            true => Ok(serde_json::json!({ "factor": self.factor })),
            false => Err(ConfigError::new("", "Scale does not describe itself here")),
        }
    }
}

fn scale_factory<F: Float>(config: &Value) -> Result<Box<dyn Layer<F>>, ConfigError> {
    let factor = config["factor"]
        .as_f64()
        .ok_or_else(|| ConfigError::new("factor", "must be a number"))?;
    Ok(Box::new(Scale {
        factor,
        describe: true,
    }))
}

#[test]
fn user_layers_load_through_a_registry() {
    let dir = scratch("registry");
    let path = dir.join("m.safetensors");
    let mut m = Sequential::new();
    m.add(Dense::new(2).input_dim(3));
    m.add(Scale {
        factor: 0.5,
        describe: true,
    });
    m.build().unwrap();
    m.save(&path).unwrap();
    let err = load_err(&path);
    assert!(
        matches!(err, NnError::ModelFile(ModelFileError::UnknownLayer { ref kind, .. }) if kind == "Scale"),
        "{err}"
    );
    let mut registry = LayerRegistry::default();
    registry.register("Scale", scale_factory::<f32>);
    let mut loaded = Sequential::load_with(&path, &registry).unwrap();
    let x = ndarray::array![[1.0_f32, 2.0, 3.0]];
    assert_eq!(
        loaded.predict(&x.view(), 1).unwrap(),
        m.predict(&x.view(), 1).unwrap()
    );
}
