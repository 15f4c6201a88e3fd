//! The translation-invariance demo's pictures, drawn as PNG files from plain data (slices and
//! `ndarray` views of `f32`), so that any training code can call them:
//!
//! - [`loss_curves`]: training and validation loss per epoch of several models;
//! - [`filter_grid`]: learned convolution filters, blue negative, red positive;
//! - [`similarity_maps`]: an animal at two positions beside its filters' similarity maps, each
//!   maximum marked and printed, to show they agree wherever the animal is;
//! - [`sample_grid`]: images with the model's answers, framed green when right, red when wrong.
//!
//! Every function validates its data, lays the picture out to fit it, draws on an in-memory
//! canvas and writes the file only if all of that worked; any problem is a [`PlotError`]
//! naming the file. Text uses the bundled DejaVu Sans (`assets/fonts/`), so no system font
//! libraries are needed. Start reading at `canvas.rs`, then any picture's file.
//!
//! ```no_run
//! use ndarray::Array3;
//! use tapir_plots::{Curve, PlotError, SimilarityRow, filter_grid, loss_curves, similarity_maps};
//!
//! # fn main() -> Result<(), PlotError> {
//! let curve = |model: &str, label: &str, values: Vec<f64>, dashed| Curve {
//!     model: model.into(),
//!     label: label.into(),
//!     values,
//!     dashed,
//! };
//! loss_curves(
//!     "loss.png",
//!     "Training loss (solid) and swapped validation loss (dashed)",
//!     &[
//!         curve("fcn", "train", vec![0.69, 0.31, 0.12], false),
//!         curve("fcn", "swapped val", vec![0.70, 1.90, 3.40], true),
//!     ],
//! )?;
//!
//! let filters = Array3::<f32>::zeros((16, 5, 5)); // a conv weight [16, 1, 5, 5], channel 0
//! filter_grid("filters.png", "cnn-1: learned filters", filters.view())?;
//!
//! let image = ndarray::Array2::<f32>::zeros((56, 56)); // the dog pasted at TL
//! let maps = Array3::<f32>::zeros((2, 60, 60)); // two filters' maps of it
//! let row = SimilarityRow { label: "dog at TL".into(), image: image.view(), maps: maps.view() };
//! similarity_maps("maps.png", "one dog, two positions", &["filter #0", "filter #1"], &[row])?;
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]

mod canvas;
mod colour;
mod error;
mod filters;
mod font;
mod loss;
mod samples;
mod similarity;
#[cfg(test)]
mod testing;

pub use error::{PlotError, PlotErrorKind};
pub use filters::filter_grid;
pub use loss::{Curve, loss_curves};
pub use samples::{Sample, SampleSection, sample_grid};
pub use similarity::{SimilarityRow, similarity_maps};
