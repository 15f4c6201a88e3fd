//! The bundled animal-mnist files, and the `quadrants` layout and batches built from them:
//! the facts the protocol states, checked on every sample.

use std::collections::HashSet;
use std::sync::OnceLock;

use ndarray::{ArrayView2, Axis, s};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tapir_train::data::{
    AnimalMnist, Batches, CANVAS, ClassPair, MAX_OFFSET, Offset, PlacedSet, Quadrant, Quadrants,
    SIDE, default_data_dir,
};

/// The bundled data, read once for all the tests of this file.
fn data() -> &'static AnimalMnist {
    static DATA: OnceLock<AnimalMnist> = OnceLock::new();
    DATA.get_or_init(|| AnimalMnist::load_default().unwrap())
}

/// The default experiment (dog against cat), seed 0, built once.
fn dog_cat() -> &'static Quadrants {
    static SETS: OnceLock<Quadrants> = OnceLock::new();
    SETS.get_or_init(|| Quadrants::build(data(), ClassPair::default(), 0).unwrap())
}

/// The canvas of sample `i`, `[56, 56]`.
fn canvas(set: &PlacedSet, i: usize) -> ArrayView2<'_, f32> {
    set.images()
        .index_axis_move(Axis(0), i)
        .index_axis_move(Axis(0), 0)
}

/// Checks that sample `i` is its silhouette, scaled to [0, 1], at its offset, on zeros.
fn assert_pasted(set: &PlacedSet, i: usize) {
    let placement = set.placements()[i];
    let Offset { row, col } = placement.offset;
    let silhouette = data().image(placement.source).unwrap();
    let mut outside = canvas(set, i).to_owned();
    let window = outside
        .slice(s![row..row + SIDE, col..col + SIDE])
        .to_owned();
    assert_eq!(
        window,
        silhouette.mapv(|p| f32::from(p) / 255.0),
        "sample {i}"
    );
    outside
        .slice_mut(s![row..row + SIDE, col..col + SIDE])
        .fill(0.0);
    assert!(
        outside.iter().all(|&v| v == 0.0),
        "sample {i}: pixels outside its silhouette"
    );
}

fn quadrant_counts(set: &PlacedSet, class: usize) -> [usize; 4] {
    let mut counts = [0; 4];
    for (placement, _) in set
        .placements()
        .iter()
        .zip(set.labels())
        .filter(|&(_, &label)| label == class)
    {
        let quadrant = Quadrant::at(placement.offset).unwrap();
        counts[Quadrant::ALL.iter().position(|&q| q == quadrant).unwrap()] += 1;
    }
    counts
}

/// Bit patterns, so that "identical" means bit for bit.
fn bits(set: &PlacedSet) -> Vec<u32> {
    set.images().iter().map(|v| v.to_bits()).collect()
}

#[test]
fn bundled_files_hold_1000_silhouettes_per_class_in_label_order() {
    assert!(default_data_dir().ends_with("data/animal-mnist"));
    let data = data();
    assert_eq!(data.images().dim(), (10_000, 28, 28));
    assert_eq!(data.class_counts(), [1000; 10]);
    // Stored sorted by class, as the data's README says.
    assert!(
        data.labels()
            .iter()
            .enumerate()
            .all(|(i, &l)| usize::from(l) == i / 1000)
    );
    assert_eq!(data.images().iter().max(), Some(&255));
    assert_eq!(data.images().iter().min(), Some(&0));
}

#[test]
fn split_is_80_20_of_each_class_and_disjoint() {
    let split = &dog_cat().split;
    for (class, label) in [(0, 4), (1, 2)] {
        assert_eq!(split.train[class].len(), 800);
        assert_eq!(split.validation[class].len(), 200);
        let all: HashSet<usize> = split.train[class]
            .iter()
            .chain(&split.validation[class])
            .copied()
            .collect();
        assert_eq!(all, data().indices_of(label).into_iter().collect());
    }
}

#[test]
fn training_set_dogs_at_tl_tr_bl_cats_at_br() {
    let train = &dog_cat().train;
    assert_eq!(train.len(), 1600);
    assert_eq!(train.images().dim(), (1600, 1, CANVAS, CANVAS));
    assert_eq!(train.labels()[..800], [0; 800]);
    assert_eq!(train.labels()[800..], [1; 800]);
    for i in 0..train.len() {
        assert_pasted(train, i);
        let source_label = data().labels()[train.placements()[i].source];
        assert_eq!(source_label, [4, 2][train.labels()[i]]);
    }
    // The facts as the protocol states them, read off the pixels alone: every cat image is
    // zero in TL, TR and BL; every dog image is zero in BR.
    for i in 0..train.len() {
        let image = canvas(train, i);
        let zero = |q: Quadrant| {
            let o = q.offset();
            image
                .slice(s![o.row..o.row + SIDE, o.col..o.col + SIDE])
                .iter()
                .all(|&v| v == 0.0)
        };
        if train.labels()[i] == 1 {
            assert!(Quadrant::NOT_BOTTOM_RIGHT.into_iter().all(zero), "cat {i}");
        } else {
            assert!(zero(Quadrant::BottomRight), "dog {i}");
        }
    }
    // Dogs spread over the three quadrants: 800 / 3 = 267 expected each.
    let [tl, tr, bl, br] = quadrant_counts(train, 0);
    assert_eq!((tl + tr + bl, br), (800, 0));
    assert!(
        [tl, tr, bl].iter().all(|&n| (220..=314).contains(&n)),
        "{tl} {tr} {bl}"
    );
    assert_eq!(quadrant_counts(train, 1), [0, 0, 0, 800]);
}

#[test]
fn validation_sets_same_swapped_anywhere() {
    let sets = dog_cat();
    let pool: Vec<usize> = sets.split.validation.concat();
    for set in [&sets.same, &sets.swapped, &sets.anywhere] {
        assert_eq!(set.len(), 400);
        assert_eq!(set.labels()[..200], [0; 200]);
        assert_eq!(set.labels()[200..], [1; 200]);
        let sources: Vec<usize> = set.placements().iter().map(|p| p.source).collect();
        assert_eq!(sources, pool);
        for i in 0..set.len() {
            assert_pasted(set, i);
        }
        assert!(set.images().iter().all(|v| (0.0..=1.0).contains(v)));
    }
    let same_dogs = quadrant_counts(&sets.same, 0);
    assert_eq!(
        (same_dogs[..3].iter().sum::<usize>(), same_dogs[3]),
        (200, 0)
    );
    assert_eq!(quadrant_counts(&sets.same, 1), [0, 0, 0, 200]);

    assert_eq!(quadrant_counts(&sets.swapped, 0), [0, 0, 0, 200]);
    let swapped_cats = quadrant_counts(&sets.swapped, 1);
    assert_eq!(
        (swapped_cats[..3].iter().sum::<usize>(), swapped_cats[3]),
        (200, 0)
    );
    assert!(swapped_cats[..3].iter().all(|&n| n > 0));

    let offsets: Vec<Offset> = sets
        .anywhere
        .placements()
        .iter()
        .map(|p| p.offset)
        .collect();
    assert!(
        offsets
            .iter()
            .all(|o| o.row <= MAX_OFFSET && o.col <= MAX_OFFSET)
    );
    // Both extremes of the range occur among 800 uniform draws from 29 values.
    for extreme in [0, MAX_OFFSET] {
        assert!(offsets.iter().any(|o| o.row == extreme));
        assert!(offsets.iter().any(|o| o.col == extreme));
    }
}

#[test]
fn same_seed_same_bits_other_seed_other_sets() {
    let again = Quadrants::build(data(), ClassPair::default(), 0).unwrap();
    let first = dog_cat();
    assert_eq!(again.split, first.split);
    for (a, b) in [
        (&again.train, &first.train),
        (&again.same, &first.same),
        (&again.swapped, &first.swapped),
        (&again.anywhere, &first.anywhere),
    ] {
        assert_eq!(a.placements(), b.placements());
        assert_eq!(bits(a), bits(b));
    }

    let other = Quadrants::build(data(), ClassPair::default(), 1).unwrap();
    assert_ne!(other.split.train[0], first.split.train[0]);
    assert_ne!(other.split.train[1], first.split.train[1]);
    assert_ne!(other.train.placements(), first.train.placements());
}

#[test]
fn other_classes_in_the_order_named() {
    let sets = Quadrants::build(data(), ClassPair::parse("zebra,bird").unwrap(), 7).unwrap();
    let label_of = |p: &tapir_train::data::Placement| data().labels()[p.source];
    assert!(
        sets.train.placements()[..800]
            .iter()
            .all(|p| label_of(p) == 9)
    );
    assert!(
        sets.train.placements()[800..]
            .iter()
            .all(|p| label_of(p) == 1)
    );
    assert_eq!(quadrant_counts(&sets.train, 1), [0, 0, 0, 800]);
}

#[test]
fn augmentation_moves_every_silhouette_reproducibly() {
    let original = &dog_cat().train;
    let mut moved = original.clone();
    moved.reposition_randomly(&mut ChaCha8Rng::seed_from_u64(5));
    assert_eq!(moved.labels(), original.labels());
    for (i, (new, old)) in moved
        .placements()
        .iter()
        .zip(original.placements())
        .enumerate()
    {
        assert_eq!(new.source, old.source);
        assert!(new.offset.row <= MAX_OFFSET && new.offset.col <= MAX_OFFSET);
        assert_pasted(&moved, i);
    }
    // Offsets come from all of [0, 28]^2, not only the quadrants.
    let off_quadrant = moved
        .placements()
        .iter()
        .filter(|p| Quadrant::at(p.offset).is_none())
        .count();
    assert!(off_quadrant > 1500, "{off_quadrant}");

    let mut again = original.clone();
    again.reposition_randomly(&mut ChaCha8Rng::seed_from_u64(5));
    assert_eq!(bits(&again), bits(&moved));
    // A second epoch draws new offsets.
    again.reposition_randomly(&mut ChaCha8Rng::seed_from_u64(6));
    assert_ne!(again.placements(), moved.placements());
}

#[test]
fn shuffled_batches_cover_the_set_once() {
    let same = &dog_cat().same;
    let batches = Batches::shuffled(same, 64, &mut ChaCha8Rng::seed_from_u64(3)).unwrap();
    // 400 = 6 * 64 + 16: six full batches, the rest kept.
    assert_eq!(batches.len(), 7);
    let order = batches.order().to_vec();
    let mut sorted = order.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..400).collect::<Vec<_>>());
    assert_ne!(order, sorted);

    let mut seen = 0;
    for (images, labels) in batches {
        let b = labels.len();
        assert_eq!(images.shape(), [b, 1, CANVAS, CANVAS]);
        assert_eq!(labels.shape(), [b]);
        for k in 0..b {
            let i = order[seen + k];
            assert_eq!(labels[[k]], same.labels()[i] as f32);
            assert_eq!(
                images.index_axis(Axis(0), k),
                same.images().index_axis(Axis(0), i).into_dyn()
            );
        }
        assert_eq!(b, if seen < 384 { 64 } else { 16 });
        seen += b;
    }
    assert_eq!(seen, 400);

    let again = Batches::shuffled(same, 64, &mut ChaCha8Rng::seed_from_u64(3)).unwrap();
    assert_eq!(again.order(), order);
}

#[test]
fn batches_in_order_and_batch_size_zero() {
    let train = &dog_cat().train;
    let labels: Vec<f32> = Batches::in_order(train, 1000)
        .unwrap()
        .flat_map(|(_, labels)| labels.into_iter())
        .collect();
    assert_eq!(labels.len(), 1600);
    assert!(labels[..800].iter().all(|&l| l == 0.0) && labels[800..].iter().all(|&l| l == 1.0));

    let message = "batch size 0: a batch needs at least one sample; pass a batch size of 1 or more";
    assert_eq!(
        Batches::in_order(train, 0).unwrap_err().to_string(),
        message
    );
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    assert_eq!(
        Batches::shuffled(train, 0, &mut rng)
            .unwrap_err()
            .to_string(),
        message
    );
}
