//! Heap footprints of resources.
//!
//! A resource that owns heap memory implements [`Footprint`]; a plugin inserts
//! it with [`crate::plugin::Builder::insert_resource_with_footprint`] and the
//! memory report lists it by name with its bytes.

use bevy_ecs::prelude::*;

/// Heap bytes owned by a value (not counting `size_of::<Self>()` itself).
pub trait Footprint {
    /// Heap bytes owned (capacity, not length: what the allocator handed out).
    fn heap_bytes(&self) -> usize;
}

impl<T> Footprint for Vec<T> {
    fn heap_bytes(&self) -> usize {
        self.capacity() * size_of::<T>()
    }
}

impl<T> Footprint for Box<[T]> {
    fn heap_bytes(&self) -> usize {
        self.len() * size_of::<T>()
    }
}

/// One resource's footprint reader: a name and a function of the world.
#[derive(Clone, Copy)]
pub(crate) struct FootprintEntry {
    pub name: &'static str,
    pub read: fn(&World) -> usize,
}

/// The footprint readers of the sim's resources (a resource itself).
#[derive(Resource, Default, Clone)]
pub(crate) struct Footprints(pub Vec<FootprintEntry>);

/// Lists resource `R` in the memory report (once).
pub(crate) fn register<R: Resource + Footprint>(world: &mut World) {
    let name = short_type_name::<R>();
    let mut f = world.get_resource_or_init::<Footprints>();
    if !f.0.iter().any(|e| e.name == name) {
        f.0.push(FootprintEntry {
            name,
            read: reader::<R>,
        });
    }
}

pub(crate) fn reader<R: Resource + Footprint>(world: &World) -> usize {
    world.get_resource::<R>().map_or(0, |r| r.heap_bytes())
}

/// Short type name: the last path segment (generic arguments kept).
pub fn short_type_name<T: ?Sized>() -> &'static str {
    let full = std::any::type_name::<T>();
    let head = full.split('<').next().unwrap_or(full);
    let start = head.rfind("::").map_or(0, |i| i + 2);
    &full[start..]
}
