//! The main and alt stacks with the node's memory accounting
//! (`script/limitedstack.cpp`): every element costs its length plus 32 bytes,
//! summed over both stacks, and a push that would pass the limit fails with
//! [`ScriptError::StackSize`]. Element access is checked and returns
//! [`ScriptError::InvalidStackOperation`] instead of panicking; the opcode
//! code still checks depths first where the node does, so errors come out in
//! the node's order.

use super::ScriptError;

/// Per-element overhead the node charges against the stack memory limit.
pub(crate) const ELEMENT_OVERHEAD: u64 = 32;

/// Main stack, alt stack and their combined memory use.
#[derive(Debug, Default)]
pub(crate) struct Stacks {
    pub(crate) main: Vec<Vec<u8>>,
    pub(crate) alt: Vec<Vec<u8>>,
    mem: u64,
    max_mem: u64,
}

fn cost(len: usize) -> u64 {
    len as u64 + ELEMENT_OVERHEAD
}

impl Stacks {
    /// Empty stacks with a memory limit in bytes.
    pub(crate) fn new(max_mem: u64) -> Stacks {
        Stacks { main: Vec::new(), alt: Vec::new(), mem: 0, max_mem }
    }

    /// Replaces the main stack (P2SH restore), recomputing the memory use.
    pub(crate) fn replace_main(&mut self, main: Vec<Vec<u8>>) {
        self.main = main;
        self.mem = self.main.iter().chain(self.alt.iter()).map(|e| cost(e.len())).sum();
    }

    /// Empties the alt stack (each script gets a fresh one, as in the node).
    pub(crate) fn clear_alt(&mut self) {
        let freed: u64 = self.alt.iter().map(|e| cost(e.len())).sum();
        self.mem = self.mem.saturating_sub(freed);
        self.alt.clear();
    }

    /// Reserves `bytes` more memory.
    pub(crate) fn charge(&mut self, bytes: u64) -> Result<(), ScriptError> {
        match self.mem.checked_add(bytes) {
            Some(m) if m <= self.max_mem => {
                self.mem = m;
                Ok(())
            }
            _ => Err(ScriptError::StackSize),
        }
    }

    /// Releases `bytes` of memory.
    pub(crate) fn release(&mut self, bytes: u64) {
        self.mem = self.mem.saturating_sub(bytes);
    }

    /// Fails with `InvalidStackOperation` unless the main stack holds `n` items.
    pub(crate) fn need(&self, n: usize) -> Result<(), ScriptError> {
        if self.main.len() < n {
            Err(ScriptError::InvalidStackOperation)
        } else {
            Ok(())
        }
    }

    /// Number of items on the main stack.
    pub(crate) fn len(&self) -> usize {
        self.main.len()
    }

    fn index(&self, depth: usize) -> Result<usize, ScriptError> {
        match self.main.len().checked_sub(depth) {
            Some(i) if depth >= 1 => Ok(i),
            _ => Err(ScriptError::InvalidStackOperation),
        }
    }

    /// The item `depth` places from the top (1 = top).
    pub(crate) fn top(&self, depth: usize) -> Result<&Vec<u8>, ScriptError> {
        let i = self.index(depth)?;
        self.main.get(i).ok_or(ScriptError::InvalidStackOperation)
    }

    /// Mutable access to the item `depth` places from the top; the caller must
    /// not change its length (use [`resize_top`](Self::resize_top) for that).
    pub(crate) fn top_mut(&mut self, depth: usize) -> Result<&mut Vec<u8>, ScriptError> {
        let i = self.index(depth)?;
        self.main.get_mut(i).ok_or(ScriptError::InvalidStackOperation)
    }

    /// Pushes an item.
    pub(crate) fn push(&mut self, item: Vec<u8>) -> Result<(), ScriptError> {
        self.charge(cost(item.len()))?;
        self.main.push(item);
        Ok(())
    }

    /// Pushes a copy of the item `depth` places from the top.
    pub(crate) fn push_copy(&mut self, depth: usize) -> Result<(), ScriptError> {
        let len = self.top(depth)?.len();
        self.charge(cost(len))?;
        let item = self.top(depth)?.clone();
        self.main.push(item);
        Ok(())
    }

    /// Pops the top item.
    pub(crate) fn pop(&mut self) -> Result<Vec<u8>, ScriptError> {
        let item = self.main.pop().ok_or(ScriptError::InvalidStackOperation)?;
        self.release(cost(item.len()));
        Ok(item)
    }

    /// Removes the item `depth` places from the top.
    pub(crate) fn remove(&mut self, depth: usize) -> Result<Vec<u8>, ScriptError> {
        let i = self.index(depth)?;
        if i >= self.main.len() {
            return Err(ScriptError::InvalidStackOperation);
        }
        let item = self.main.remove(i);
        self.release(cost(item.len()));
        Ok(item)
    }

    /// Inserts `item` so that it ends up `depth` places from the top.
    pub(crate) fn insert(&mut self, depth: usize, item: Vec<u8>) -> Result<(), ScriptError> {
        let i = depth
            .checked_sub(1)
            .and_then(|d| self.main.len().checked_sub(d))
            .ok_or(ScriptError::InvalidStackOperation)?;
        self.charge(cost(item.len()))?;
        self.main.insert(i, item);
        Ok(())
    }

    /// Swaps the items `a` and `b` places from the top.
    pub(crate) fn swap(&mut self, a: usize, b: usize) -> Result<(), ScriptError> {
        let (i, j) = (self.index(a)?, self.index(b)?);
        if i >= self.main.len() || j >= self.main.len() {
            return Err(ScriptError::InvalidStackOperation);
        }
        self.main.swap(i, j);
        Ok(())
    }

    /// Resizes the top item to `new_len` bytes filled by `f`, charging or
    /// releasing the difference first (so an oversized result is refused
    /// before it is allocated).
    pub(crate) fn resize_top(&mut self, new_len: usize, f: impl FnOnce(&mut Vec<u8>)) -> Result<(), ScriptError> {
        let old = self.top(1)?.len();
        if new_len > old {
            self.charge((new_len - old) as u64)?;
        } else {
            self.release((old - new_len) as u64);
        }
        let top = self.top_mut(1)?;
        f(top);
        debug_assert_eq!(top.len(), new_len);
        Ok(())
    }

    /// Moves the main stack's top to the alt stack.
    pub(crate) fn move_to_alt(&mut self) -> Result<(), ScriptError> {
        let item = self.main.pop().ok_or(ScriptError::InvalidStackOperation)?;
        self.alt.push(item);
        Ok(())
    }

    /// Moves the alt stack's top to the main stack.
    pub(crate) fn move_from_alt(&mut self) -> Result<(), ScriptError> {
        let item = self.alt.pop().ok_or(ScriptError::InvalidAltstackOperation)?;
        self.main.push(item);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_is_charged_per_element_with_overhead() {
        let mut s = Stacks::new(100);
        s.push(vec![0; 30]).unwrap();
        s.push(vec![0; 6]).unwrap();
        assert_eq!(s.push(vec![]), Err(ScriptError::StackSize));
        s.pop().unwrap();
        assert_eq!(s.push_copy(1), Err(ScriptError::StackSize));
        s.push(vec![1; 6]).unwrap();
        assert_eq!(s.resize_top(7, |v| v.push(0)), Err(ScriptError::StackSize));
        s.resize_top(1, |v| v.truncate(1)).unwrap();
        assert_eq!(s.push(vec![]), Err(ScriptError::StackSize));
        s.move_to_alt().unwrap();
        assert_eq!(s.len(), 1);
        s.clear_alt();
        s.push(vec![0; 6]).unwrap();
        assert_eq!(s.push(vec![]), Err(ScriptError::StackSize));
    }

    #[test]
    fn out_of_range_access_is_an_error_not_a_panic() {
        let mut s = Stacks::new(u64::MAX);
        assert_eq!(s.top(1).unwrap_err(), ScriptError::InvalidStackOperation);
        assert_eq!(s.top(0).unwrap_err(), ScriptError::InvalidStackOperation);
        assert_eq!(s.remove(3).unwrap_err(), ScriptError::InvalidStackOperation);
        assert_eq!(s.swap(1, 2).unwrap_err(), ScriptError::InvalidStackOperation);
        assert_eq!(s.move_from_alt().unwrap_err(), ScriptError::InvalidAltstackOperation);
        s.push(vec![1]).unwrap();
        s.push(vec![2]).unwrap();
        s.insert(3, vec![3]).unwrap();
        assert_eq!(s.main, vec![vec![3], vec![1], vec![2]]);
        s.swap(1, 3).unwrap();
        assert_eq!(s.remove(2).unwrap(), vec![1]);
        assert_eq!(s.main, vec![vec![2], vec![3]]);
    }
}
