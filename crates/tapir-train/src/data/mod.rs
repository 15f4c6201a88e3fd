//! The data of the translation-invariance experiment: the animal-mnist silhouettes read from
//! IDX files ([`AnimalMnist`]), and the class names and the pair an experiment compares
//! ([`ClassPair`]).
//!
//! Start reading at `animal_mnist.rs`.

mod animal_mnist;
mod classes;
mod error;
pub mod idx;

pub use animal_mnist::{AnimalMnist, IMAGES_FILE, LABELS_FILE, SIDE, default_data_dir};
pub use classes::{CLASS_NAMES, ClassPair, class_label, class_name};
pub use error::DataError;
