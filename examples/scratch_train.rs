use std::sync::Arc;
use tapir_graph::{Graph, Network};
use tapir_train::data::{AnimalMnist, ClassPair, Quadrants};
use tapir_train::optim::{Optimizer, OptimizerKind};
use tapir_train::train::{TrainConfig, fit};
fn main() {
    let name = std::env::args().nth(1).unwrap_or("cnn-1".into());
    let epochs: usize = std::env::args()
        .nth(2)
        .map(|s| s.parse().unwrap())
        .unwrap_or(15);
    let registry = tapir_ops::builtin_registry();
    let data = AnimalMnist::load_default().unwrap();
    let sets = Quadrants::build(&data, ClassPair::parse("dog,cat").unwrap(), 0).unwrap();
    let graph = Arc::new(Graph::load(format!("graphs/{name}.ron"), &registry).unwrap());
    let network = Network::<f32>::new(graph).unwrap();
    let mut params = network.init_params(0);
    let mut opt = Optimizer::new(OptimizerKind::sgd(0.01, 0.9), &params).unwrap();
    let config = TrainConfig {
        epochs,
        batch: 64,
        seed: 0,
        progress: false,
    };
    let t = std::time::Instant::now();
    fit(
        &network,
        &mut params,
        &mut opt,
        &config,
        0,
        |_| Ok(sets.train.clone()),
        &[
            ("same", &sets.same),
            ("swapped", &sets.swapped),
            ("anywhere", &sets.anywhere),
        ],
        |r, _, _| {
            println!(
                "{} train {:.3}/{:.3} {:?} {:.2}s",
                r.epoch,
                r.train.loss,
                r.train.accuracy,
                r.validation
                    .iter()
                    .map(|(n, m)| format!("{n} {:.3}/{:.3}", m.loss, m.accuracy))
                    .collect::<Vec<_>>(),
                r.seconds
            );
            Ok(())
        },
    )
    .unwrap();
    println!("total {:.1}s", t.elapsed().as_secs_f64());
}
