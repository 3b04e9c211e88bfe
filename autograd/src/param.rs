//! `Param` and `ParamStore`: named tensors that outlive a tape, saved and loaded as safetensors.

use crate::{Element, Shape, Tensor};
use indexmap::IndexMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// A named, persistent tensor with a stable id: a model's weight.
///
/// Cloning a `Param` gives another handle to the same value, so a layer and its
/// [`ParamStore`] see every update. [`crate::Tape::param`] puts it on a tape as a leaf.
#[derive(Clone)]
pub struct Param<T: Element = f32> {
    inner: Arc<ParamInner<T>>,
}

struct ParamInner<T: Element> {
    id: u64,
    name: String,
    value: RwLock<Tensor<T>>,
}

impl<T: Element> Param<T> {
    /// A new parameter with a fresh id.
    pub fn new(name: impl Into<String>, value: Tensor<T>) -> Self {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        Param { inner: Arc::new(ParamInner { id, name: name.into(), value: RwLock::new(value) }) }
    }

    /// The id that identifies this parameter on every tape.
    pub fn id(&self) -> u64 {
        self.inner.id
    }

    /// The full dotted name, like `encoder.layers.0.linear1.weight`.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The current value (a cheap clone sharing the buffer).
    pub fn value(&self) -> Tensor<T> {
        self.inner.value.read().expect("param lock poisoned").clone()
    }

    /// The shape of the value.
    pub fn shape(&self) -> Shape {
        self.inner.value.read().expect("param lock poisoned").shape().clone()
    }

    /// Replaces the value.
    ///
    /// # Panics
    /// If the new value's shape differs from the old one.
    #[track_caller]
    pub fn set(&self, value: Tensor<T>) {
        let mut slot = self.inner.value.write().expect("param lock poisoned");
        assert!(
            slot.shape() == value.shape(),
            "Param::set: {} has shape {}, the new value has {}",
            self.inner.name,
            slot.shape(),
            value.shape()
        );
        *slot = value;
    }

    /// Updates the value in place (an optimizer step). Copies first only if a tape still
    /// shares the buffer.
    pub fn update(&self, f: impl FnOnce(&mut [T])) {
        let mut slot = self.inner.value.write().expect("param lock poisoned");
        f(slot.data_mut());
    }
}

impl<T: Element> fmt::Debug for Param<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Param({} {})", self.name(), self.shape())
    }
}

/// All parameters of a model, in the order they were created, by dotted name.
///
/// ```
/// use autograd::{ParamStore, Tensor};
/// let mut store = ParamStore::<f32>::new();
/// let mut encoder = store.prefix("encoder");
/// let mut layer = encoder.prefix("layers.0");
/// let w = layer.param("weight", Tensor::zeros([4, 2]));
/// assert_eq!(w.name(), "encoder.layers.0.weight");
/// assert_eq!(store.names().collect::<Vec<_>>(), ["encoder.layers.0.weight"]);
/// assert_eq!(store.num_elements(), 8);
/// ```
pub struct ParamStore<T: Element = f32> {
    params: IndexMap<String, Param<T>>,
}

impl<T: Element> Default for ParamStore<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// A place in a [`ParamStore`] under a dotted prefix; what a layer's `new` receives.
pub struct ParamPath<'s, T: Element> {
    store: &'s mut ParamStore<T>,
    prefix: String,
}

impl<T: Element> ParamPath<'_, T> {
    /// A path one level deeper: `prefix.name`.
    pub fn prefix(&mut self, name: &str) -> ParamPath<'_, T> {
        ParamPath { prefix: join(&self.prefix, name), store: self.store }
    }

    /// Creates the parameter `prefix.name` with an initial value.
    ///
    /// # Panics
    /// If the store already holds that name.
    #[track_caller]
    pub fn param(&mut self, name: &str, init: Tensor<T>) -> Param<T> {
        self.store.insert(join(&self.prefix, name), init)
    }

    /// The full name a parameter `name` would get here.
    pub fn name_of(&self, name: &str) -> String {
        join(&self.prefix, name)
    }
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() { name.to_string() } else { format!("{prefix}.{name}") }
}

impl<T: Element> ParamStore<T> {
    /// An empty store.
    pub fn new() -> Self {
        ParamStore { params: IndexMap::new() }
    }

    /// The path `name` at the top of the store.
    pub fn prefix(&mut self, name: &str) -> ParamPath<'_, T> {
        ParamPath { store: self, prefix: name.to_string() }
    }

    /// The top of the store, with no prefix.
    pub fn root(&mut self) -> ParamPath<'_, T> {
        ParamPath { store: self, prefix: String::new() }
    }

    /// Creates the parameter `name` with an initial value.
    ///
    /// # Panics
    /// If the store already holds that name.
    #[track_caller]
    pub fn insert(&mut self, name: String, init: Tensor<T>) -> Param<T> {
        assert!(!self.params.contains_key(&name), "ParamStore: a parameter named {name} already exists");
        let p = Param::new(name.clone(), init);
        self.params.insert(name, p.clone());
        p
    }

    /// The parameter called `name`.
    pub fn get(&self, name: &str) -> Option<&Param<T>> {
        self.params.get(name)
    }

    /// Parameters in creation order.
    pub fn iter(&self) -> impl Iterator<Item = &Param<T>> {
        self.params.values()
    }

    /// Names in creation order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.params.keys().map(String::as_str)
    }

    /// Number of parameters.
    pub fn len(&self) -> usize {
        self.params.len()
    }

    /// True if the store holds no parameters.
    pub fn is_empty(&self) -> bool {
        self.params.is_empty()
    }

    /// Total number of scalar values in all parameters.
    pub fn num_elements(&self) -> usize {
        self.params.values().map(|p| p.shape().numel()).sum()
    }

    /// Writes every parameter to a safetensors file, by name. The file is written beside the
    /// target and renamed into place, so a crash never leaves half a checkpoint.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), StoreError> {
        let path = path.as_ref();
        let err = |kind| StoreError { path: path.to_path_buf(), kind: Box::new(kind) };
        let bytes = self.to_safetensors_bytes();
        let tmp = path.with_extension("safetensors.partial");
        std::fs::write(&tmp, bytes).map_err(|e| err(StoreErrorKind::Io(e)))?;
        std::fs::rename(&tmp, path).map_err(|e| err(StoreErrorKind::Io(e)))
    }

    /// The safetensors encoding of every parameter.
    pub fn to_safetensors_bytes(&self) -> Vec<u8> {
        let buffers: Vec<(String, Vec<usize>, Vec<u8>)> = self
            .iter()
            .map(|p| {
                let v = p.value();
                let mut bytes = Vec::new();
                T::extend_le_bytes(v.data(), &mut bytes);
                (p.name().to_string(), v.dims().to_vec(), bytes)
            })
            .collect();
        let views = buffers.iter().map(|(name, dims, bytes)| {
            let view = safetensors::tensor::TensorView::new(T::SAFETENSORS_DTYPE, dims.clone(), bytes)
                .expect("a parameter's bytes always match its shape and dtype");
            (name.as_str(), view)
        });
        safetensors::serialize(views, &None).expect("serializing in-memory tensors cannot fail")
    }

    /// Loads every parameter from a safetensors file. The file must hold exactly the store's
    /// names with the same shapes and dtype; otherwise nothing is changed and the error names
    /// the file and the tensor.
    pub fn load(&self, path: impl AsRef<Path>) -> Result<(), StoreError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path)
            .map_err(|e| StoreError { path: path.to_path_buf(), kind: Box::new(StoreErrorKind::Io(e)) })?;
        self.load_safetensors_bytes(&bytes)
            .map_err(|kind| StoreError { path: path.to_path_buf(), kind: Box::new(kind) })
    }

    /// Like [`ParamStore::load`], from bytes in memory.
    pub fn load_safetensors_bytes(&self, bytes: &[u8]) -> Result<(), StoreErrorKind> {
        let file = safetensors::SafeTensors::deserialize(bytes).map_err(|e| StoreErrorKind::Format(e.to_string()))?;
        let mut names: Vec<String> = file.names().into_iter().cloned().collect();
        names.sort();
        if let Some(extra) = names.iter().find(|n| !self.params.contains_key(n.as_str())) {
            return Err(StoreErrorKind::Unexpected(extra.clone()));
        }
        // Check everything first, then assign: a failed load changes nothing.
        let mut values = Vec::with_capacity(self.len());
        for p in self.iter() {
            let view = file.tensor(p.name()).map_err(|_| StoreErrorKind::Missing(p.name().to_string(), p.shape()))?;
            if view.dtype() != T::SAFETENSORS_DTYPE {
                return Err(StoreErrorKind::Dtype {
                    name: p.name().to_string(),
                    expected: T::DTYPE_NAME,
                    found: format!("{:?}", view.dtype()).to_lowercase(),
                });
            }
            let found = Shape::from(view.shape());
            if found != p.shape() {
                return Err(StoreErrorKind::Shape { name: p.name().to_string(), expected: p.shape(), found });
            }
            values.push(Tensor::from_vec(T::from_le_bytes(view.data()), found));
        }
        for (p, v) in self.iter().zip(values) {
            p.set(v);
        }
        Ok(())
    }
}

/// The tensors in safetensors bytes, as (name, element type, shape) sorted by name, read from
/// the header without copying any data: what a loader checks against a config before it builds
/// a model. The element type is lowercase (`f32`, `f64`, `bf16`, ...).
pub fn safetensors_header(bytes: &[u8]) -> Result<Vec<(String, String, Shape)>, StoreErrorKind> {
    let file = safetensors::SafeTensors::deserialize(bytes).map_err(|e| StoreErrorKind::Format(e.to_string()))?;
    let mut tensors: Vec<(String, String, Shape)> = file
        .tensors()
        .into_iter()
        .map(|(name, view)| (name, format!("{:?}", view.dtype()).to_lowercase(), Shape::from(view.shape())))
        .collect();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(tensors)
}

/// A failure to save or load a [`ParamStore`], naming the file.
#[derive(Debug)]
pub struct StoreError {
    /// The file being read or written.
    pub path: PathBuf,
    /// What went wrong (boxed: errors are rare, and `Result`s stay small).
    pub kind: Box<StoreErrorKind>,
}

/// What went wrong with a parameter file.
#[derive(Debug)]
pub enum StoreErrorKind {
    /// The file could not be read or written.
    Io(std::io::Error),
    /// The bytes are not a valid safetensors file (for example truncated).
    Format(String),
    /// A parameter of the store is not in the file.
    Missing(String, Shape),
    /// The file holds a tensor the store has no parameter for.
    Unexpected(String),
    /// A tensor has the wrong shape.
    Shape {
        /// The tensor's name.
        name: String,
        /// The shape the store's parameter has.
        expected: Shape,
        /// The shape in the file.
        found: Shape,
    },
    /// A tensor has the wrong element type.
    Dtype {
        /// The tensor's name.
        name: String,
        /// The store's element type (`f32` or `f64`).
        expected: &'static str,
        /// The element type in the file.
        found: String,
    },
}

impl fmt::Display for StoreErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreErrorKind::Io(e) => write!(f, "{e}"),
            StoreErrorKind::Format(e) => write!(f, "not a valid safetensors file: {e}"),
            StoreErrorKind::Missing(name, shape) => write!(f, "tensor {name} (expected shape {shape}) is missing"),
            StoreErrorKind::Unexpected(name) => write!(f, "tensor {name} is not a parameter of this model"),
            StoreErrorKind::Shape { name, expected, found } => {
                write!(f, "tensor {name} has shape {found}, expected {expected}")
            }
            StoreErrorKind::Dtype { name, expected, found } => {
                write!(f, "tensor {name} has dtype {found}, expected {expected}")
            }
        }
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.kind)
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self.kind.as_ref() {
            StoreErrorKind::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl std::error::Error for StoreErrorKind {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Tape;

    fn store() -> ParamStore<f32> {
        let mut s = ParamStore::new();
        let mut enc = s.prefix("enc");
        enc.param("w", Tensor::from_fn([2, 3], |i| i as f32));
        enc.param("b", Tensor::from_fn([3], |i| -(i as f32)));
        s
    }

    #[test]
    fn round_trip_in_memory() {
        let a = store();
        let b = store();
        b.get("enc.w").unwrap().set(Tensor::zeros([2, 3]));
        b.load_safetensors_bytes(&a.to_safetensors_bytes()).unwrap();
        assert!(b.get("enc.w").unwrap().value().bit_eq(&a.get("enc.w").unwrap().value()));
    }

    #[test]
    fn tied_param_is_one_leaf_and_accumulates() {
        let s = store();
        let w = s.get("enc.b").unwrap();
        let tape = Tape::new();
        let (a, b) = (tape.param(w), tape.param(w));
        assert_eq!(a.id(), b.id());
        let g = (a + b).sum_all().backward();
        assert_eq!(g.param(w).unwrap().to_vec(), vec![2.0; 3]);
    }

    #[test]
    fn wrong_shape_changes_nothing() {
        let a = store();
        let mut other = ParamStore::<f32>::new();
        other.prefix("enc").param("w", Tensor::ones([2, 3]));
        other.prefix("enc").param("b", Tensor::ones([4]));
        let err = a.load_safetensors_bytes(&other.to_safetensors_bytes()).unwrap_err();
        assert_eq!(err.to_string(), "tensor enc.b has shape [4], expected [3]");
        assert_eq!(a.get("enc.w").unwrap().value().data()[0], 0.0);
    }
}
