//! The data of the translation-invariance experiment: the animal-mnist silhouettes read from
//! IDX files ([`AnimalMnist`]), the class names and the pair an experiment compares
//! ([`ClassPair`]), the `quadrants` layout ([`Quadrants`]) and its batches ([`Batches`]).
//!
//! Start reading at `layout.rs`: it is the protocol, step by step.
//!
//! ```
//! use rand::SeedableRng;
//! use tapir_train::data::{AnimalMnist, Batches, ClassPair, Quadrants};
//!
//! let data = AnimalMnist::load_default()?;
//! let sets = Quadrants::build(&data, ClassPair::parse("dog,cat")?, 0)?;
//! let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
//! let (images, labels) = Batches::shuffled(&sets.train, 64, &mut rng)?.next().unwrap();
//! assert_eq!((images.shape(), labels.shape()), (&[64, 1, 56, 56][..], &[64][..]));
//! # Ok::<(), tapir_train::data::DataError>(())
//! ```

mod animal_mnist;
mod batch;
mod classes;
mod error;
pub mod idx;
mod layout;

pub use animal_mnist::{AnimalMnist, IMAGES_FILE, LABELS_FILE, SIDE, default_data_dir};
pub use batch::{Batch, Batches};
pub use classes::{CLASS_NAMES, ClassPair, class_label, class_name};
pub use error::DataError;
pub use layout::{
    CANVAS, MAX_OFFSET, Offset, PlacedSet, Placement, Quadrant, Quadrants, Split, paste,
    random_offset,
};
