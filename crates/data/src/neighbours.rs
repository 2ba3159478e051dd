//! Each training class's most similar classes, as some scorer (in training: the network being
//! trained) sees them, for episodes of hard negatives: an anchor class and classes the model
//! currently confuses with it, wherever their alphabets. This crate only holds and samples
//! the table; whoever scores the classes fills it.

use std::sync::Arc;

use rayon::prelude::*;

use crate::error::{DataError, Result};

/// `k` nearest classes of each of `classes` classes, most similar first.
#[derive(Clone, Debug, PartialEq)]
pub struct Neighbours {
    classes: usize,
    k: usize,
    /// Row `c` (`k` entries) holds class `c`'s neighbours.
    table: Vec<u32>,
}

impl Neighbours {
    /// The `k` highest-scoring other classes of each class by `score(c, d)` (higher: more
    /// alike; NaN counts as least alike). Ties go to the lower class number, so the table is a
    /// function of the scores alone.
    pub fn from_scores(
        classes: usize,
        k: usize,
        score: impl Fn(usize, usize) -> f32 + Sync,
    ) -> Result<Self> {
        check(classes, k)?;
        let key = |v: f32| if v.is_nan() { f32::NEG_INFINITY } else { v };
        let table: Vec<u32> = (0..classes)
            .into_par_iter()
            .flat_map_iter(|c| {
                let mut others: Vec<(f32, usize)> = (0..classes)
                    .filter(|&d| d != c)
                    .map(|d| (key(score(c, d)), d))
                    .collect();
                let by =
                    |a: &(f32, usize), b: &(f32, usize)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1));
                others.select_nth_unstable_by(k - 1, by);
                others.truncate(k);
                others.sort_unstable_by(by);
                others.into_iter().map(|(_, d)| d as u32)
            })
            .collect();
        Ok(Neighbours { classes, k, table })
    }

    /// A table saved earlier (`table()`), checked: `classes * k` entries, each another class.
    pub fn from_table(classes: usize, k: usize, table: Vec<u32>) -> Result<Self> {
        check(classes, k)?;
        if table.len() != classes * k {
            return Err(DataError::Config(format!(
                "a neighbour table of {classes} classes x {k} needs {} entries, not {}",
                classes * k,
                table.len()
            )));
        }
        for (c, row) in table.chunks(k).enumerate() {
            if let Some(&d) = row
                .iter()
                .find(|&&d| d as usize >= classes || d as usize == c)
            {
                return Err(DataError::Config(format!(
                    "neighbour table: class {c} lists {d}, which is not another of {classes} classes"
                )));
            }
        }
        Ok(Neighbours { classes, k, table })
    }

    pub fn classes(&self) -> usize {
        self.classes
    }

    pub fn k(&self) -> usize {
        self.k
    }

    /// Class `class`'s neighbours, most similar first.
    pub fn of(&self, class: usize) -> &[u32] {
        &self.table[class * self.k..(class + 1) * self.k]
    }

    /// Every row, in class order.
    pub fn table(&self) -> &[u32] {
        &self.table
    }
}

fn check(classes: usize, k: usize) -> Result<()> {
    if k == 0 || k >= classes {
        return Err(DataError::Config(format!(
            "{k} neighbours per class need at least {} classes, and k at least 1; there are {classes}",
            k + 1
        )));
    }
    Ok(())
}

/// Episodes of hard negatives: with probability `fraction` an episode is an anchor class and
/// `ways - 1` classes drawn from its neighbours (see `EpisodeSampler::fill_with`).
#[derive(Clone, Debug)]
pub struct HardNegatives {
    pub fraction: f32,
    pub neighbours: Arc<Neighbours>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_classes_come_first_and_ties_go_to_the_lower_class() {
        // Classes on a line at 0, 1, 3, 3, 10: similarity is minus the distance.
        let at = [0.0f32, 1.0, 3.0, 3.0, 10.0];
        let n = Neighbours::from_scores(5, 2, |c, d| -(at[c] - at[d]).abs()).unwrap();
        assert_eq!(n.of(0), [1, 2]); // 2 and 3 tie at distance 3: the lower first
        assert_eq!(n.of(1), [0, 2]); // 0 at 1; 2 and 3 tie at 2
        assert_eq!(n.of(2), [3, 1]);
        assert_eq!(n.of(3), [2, 1]);
        assert_eq!(n.of(4), [2, 3]);
        assert_eq!(n.table().len(), 10);
        let again = Neighbours::from_table(5, 2, n.table().to_vec()).unwrap();
        assert_eq!(again, n);
        // NaN scores rank last.
        let nan =
            Neighbours::from_scores(3, 1, |_, d| if d == 1 { f32::NAN } else { 0.0 }).unwrap();
        assert_eq!(nan.of(0), [2]);
    }

    #[test]
    fn bad_tables_are_refused() {
        assert!(Neighbours::from_scores(3, 3, |_, _| 0.0).is_err());
        assert!(Neighbours::from_scores(3, 0, |_, _| 0.0).is_err());
        let short = Neighbours::from_table(3, 1, vec![1, 2]).unwrap_err();
        assert!(
            short.to_string().contains("needs 3 entries, not 2"),
            "{short}"
        );
        let own = Neighbours::from_table(3, 1, vec![1, 0, 2]).unwrap_err();
        assert!(own.to_string().contains("class 2 lists 2"), "{own}");
        let outside = Neighbours::from_table(3, 1, vec![1, 7, 0]).unwrap_err();
        assert!(outside.to_string().contains("class 1 lists 7"), "{outside}");
    }
}
