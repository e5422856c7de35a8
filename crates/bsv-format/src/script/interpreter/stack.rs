//! The main and alt stacks with the node's memory accounting
//! (`script/limitedstack.cpp`): every element costs its length plus 32 bytes,
//! summed over both stacks, and a push that would pass the limit fails with
//! [`ScriptError::StackSize`]. Element access is checked and returns
//! [`ScriptError::InvalidStackOperation`] instead of panicking; the opcode
//! code still checks depths first where the node does, so errors come out in
//! the node's order.
//!
//! The stacks also carry the input's work meter ([`super::work`]): every
//! method that copies or moves data charges it after the memory check (so
//! the node's `StackSize` comes first) and before the copy.

use super::work::{self, COPY, ITEM, ITEM_MOVE};
use super::ScriptError;

/// Per-element overhead the node charges against the stack memory limit.
pub(crate) const ELEMENT_OVERHEAD: u64 = 32;

/// Main stack, alt stack, their combined memory use and the work used so far.
#[derive(Debug, Default)]
pub(crate) struct Stacks {
    pub(crate) main: Vec<Vec<u8>>,
    pub(crate) alt: Vec<Vec<u8>>,
    mem: u64,
    max_mem: u64,
    work: u64,
    max_work: u64,
    /// Most items the two stacks have held together so far.
    items_peak: usize,
}

fn cost(len: usize) -> u64 {
    len as u64 + ELEMENT_OVERHEAD
}

impl Stacks {
    /// Empty stacks with a memory limit in bytes and a work budget in units.
    pub(crate) fn new(max_mem: u64, max_work: u64) -> Stacks {
        Stacks {
            main: Vec::new(),
            alt: Vec::new(),
            mem: 0,
            max_mem,
            work: 0,
            max_work,
            items_peak: 0,
        }
    }

    /// Charges [`ITEM`] when one more item raises the most the stacks have
    /// held: a deep stack's cost (its growth, an allocation per item and
    /// freeing them all) is paid once per level reached.
    fn charge_new_item(&mut self) -> Result<(), ScriptError> {
        let items = self.main.len() + self.alt.len() + 1;
        if items > self.items_peak {
            self.items_peak = items;
            self.charge_work(ITEM)?;
        }
        Ok(())
    }

    /// Charges `units` of work, before the work is done.
    ///
    /// # Errors
    /// [`ScriptError::WorkBudgetExceeded`] if the total would pass the budget;
    /// the refused charge is still counted, so [`work`](Self::work) is above
    /// the budget exactly when the budget was exceeded.
    pub(crate) fn charge_work(&mut self, units: u64) -> Result<(), ScriptError> {
        self.work = self.work.saturating_add(units);
        if self.work > self.max_work {
            Err(ScriptError::WorkBudgetExceeded)
        } else {
            Ok(())
        }
    }

    /// Work units charged so far (including a refused charge).
    pub(crate) fn work(&self) -> u64 {
        self.work
    }

    /// Bytes of stack memory in use (lengths plus per-element overhead).
    pub(crate) fn memory(&self) -> u64 {
        self.mem
    }

    /// Replaces the main stack (P2SH restore), recomputing the memory use.
    pub(crate) fn replace_main(&mut self, main: Vec<Vec<u8>>) {
        self.main = main;
        self.mem = self
            .main
            .iter()
            .chain(self.alt.iter())
            .map(|e| cost(e.len()))
            .sum();
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
        self.main
            .get_mut(i)
            .ok_or(ScriptError::InvalidStackOperation)
    }

    /// Pushes an item already built (and paid for) by the caller.
    pub(crate) fn push(&mut self, item: Vec<u8>) -> Result<(), ScriptError> {
        self.charge(cost(item.len()))?;
        self.charge_new_item()?;
        self.main.push(item);
        Ok(())
    }

    /// Pushes a copy of `data`, charging memory, then the copy, then copying.
    pub(crate) fn push_slice(&mut self, data: &[u8]) -> Result<(), ScriptError> {
        self.charge(cost(data.len()))?;
        self.charge_new_item()?;
        self.charge_work(work::bytes(data.len(), COPY))?;
        self.main.push(data.to_vec());
        Ok(())
    }

    /// Pushes a copy of the item `depth` places from the top (memory, then
    /// work, then the copy).
    pub(crate) fn push_copy(&mut self, depth: usize) -> Result<(), ScriptError> {
        let len = self.top(depth)?.len();
        self.charge(cost(len))?;
        self.charge_new_item()?;
        self.charge_work(work::bytes(len, COPY))?;
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

    /// Removes the item `depth` places from the top (charging the items
    /// above it, which move down).
    pub(crate) fn remove(&mut self, depth: usize) -> Result<Vec<u8>, ScriptError> {
        let i = self.index(depth)?;
        if i >= self.main.len() {
            return Err(ScriptError::InvalidStackOperation);
        }
        self.charge_work(work::bytes(depth, ITEM_MOVE))?;
        let item = self.main.remove(i);
        self.release(cost(item.len()));
        Ok(item)
    }

    /// OP_TUCK: inserts a copy of the top item below the second one
    /// (`x1 x2 -- x2 x1 x2`), charging memory, then work, then copying.
    pub(crate) fn tuck(&mut self) -> Result<(), ScriptError> {
        let len = self.top(1)?.len();
        let i = self.index(2)?;
        self.charge(cost(len))?;
        self.charge_new_item()?;
        self.charge_work(work::bytes(len, COPY).saturating_add(work::bytes(2, ITEM_MOVE)))?;
        let item = self.top(1)?.clone();
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
    /// before it is allocated), then the work of touching every old and new
    /// byte once. A result much shorter than its allocation gives the spare
    /// capacity back, so memory in use stays what the accounting says.
    pub(crate) fn resize_top(
        &mut self,
        new_len: usize,
        f: impl FnOnce(&mut Vec<u8>),
    ) -> Result<(), ScriptError> {
        let old = self.top(1)?.len();
        if new_len > old {
            self.charge((new_len - old) as u64)?;
        } else {
            self.release((old - new_len) as u64);
        }
        self.charge_work(work::bytes(old.max(new_len), COPY))?;
        let top = self.top_mut(1)?;
        f(top);
        debug_assert_eq!(top.len(), new_len);
        shrink_if_wasteful(top);
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
        let item = self
            .alt
            .pop()
            .ok_or(ScriptError::InvalidAltstackOperation)?;
        self.main.push(item);
        Ok(())
    }
}

/// Returns an allocation's spare capacity once it is more than the data
/// (after a split, a truncation or a drain); cheap, as allocators shrink in place.
pub(crate) fn shrink_if_wasteful(v: &mut Vec<u8>) {
    if v.capacity() / 2 > v.len().max(32) {
        v.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_is_charged_before_copies_and_a_refused_charge_is_counted() {
        let budget = 2 * ITEM + 80 * COPY;
        let mut s = Stacks::new(u64::MAX, budget);
        s.push_slice(&[7; 40]).unwrap();
        assert_eq!(s.work(), ITEM + 40 * COPY);
        s.push_copy(1).unwrap();
        assert_eq!(s.work(), budget);
        // Popping and pushing again does not pay for a new level.
        s.pop().unwrap();
        assert_eq!(s.push(vec![1]), Ok(()));
        s.pop().unwrap();
        // 40 more would pass the budget: refused before the copy, and counted.
        assert_eq!(s.push_copy(1), Err(ScriptError::WorkBudgetExceeded));
        assert_eq!(s.len(), 1);
        assert_eq!(s.work(), budget + 40 * COPY);
        let mut s = Stacks::new(u64::MAX, u64::MAX);
        s.push(vec![0; 4]).unwrap();
        s.push(vec![]).unwrap();
        s.move_to_alt().unwrap();
        s.move_from_alt().unwrap();
        assert_eq!(s.work(), 2 * ITEM);
        s.resize_top(10, |v| v.resize(10, 1)).unwrap();
        assert_eq!(s.work(), 2 * ITEM + 10 * COPY);
        s.remove(2).unwrap();
        assert_eq!(s.work(), 2 * ITEM + 10 * COPY + 2 * ITEM_MOVE);
        // u64::MAX is no budget at all: the count saturates and never passes it.
        s.charge_work(u64::MAX).unwrap();
        assert_eq!(s.work(), u64::MAX);
    }

    #[test]
    fn a_shrunk_item_gives_its_allocation_back() {
        let mut s = Stacks::new(u64::MAX, u64::MAX);
        s.push(vec![1; 100_000]).unwrap();
        s.resize_top(10, |v| v.truncate(10)).unwrap();
        assert!(s.top(1).unwrap().capacity() < 1000);
        assert_eq!(s.memory(), 10 + ELEMENT_OVERHEAD);
    }

    #[test]
    fn memory_is_charged_per_element_with_overhead() {
        let mut s = Stacks::new(100, u64::MAX);
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
        let mut s = Stacks::new(u64::MAX, u64::MAX);
        assert_eq!(s.top(1).unwrap_err(), ScriptError::InvalidStackOperation);
        assert_eq!(s.top(0).unwrap_err(), ScriptError::InvalidStackOperation);
        assert_eq!(s.remove(3).unwrap_err(), ScriptError::InvalidStackOperation);
        assert_eq!(
            s.swap(1, 2).unwrap_err(),
            ScriptError::InvalidStackOperation
        );
        assert_eq!(
            s.move_from_alt().unwrap_err(),
            ScriptError::InvalidAltstackOperation
        );
        assert_eq!(s.tuck().unwrap_err(), ScriptError::InvalidStackOperation);
        s.push(vec![1]).unwrap();
        s.push(vec![2]).unwrap();
        s.tuck().unwrap();
        assert_eq!(s.main, vec![vec![2], vec![1], vec![2]]);
        s.push(vec![3]).unwrap();
        s.swap(1, 3).unwrap();
        assert_eq!(s.remove(2).unwrap(), vec![2]);
        assert_eq!(s.main, vec![vec![2], vec![3], vec![1]]);
    }
}
