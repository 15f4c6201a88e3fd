//! The ten animal-mnist classes, and the two of them that an experiment compares.

use std::fmt;
use std::str::FromStr;

use super::error::DataError;

/// The animal-mnist class names, indexed by label.
pub const CLASS_NAMES: [&str; 10] = [
    "bear", "bird", "cat", "cow", "dog", "elephant", "giraffe", "horse", "sheep", "zebra",
];

/// The name of an animal-mnist label, if it is one.
pub fn class_name(label: u8) -> Option<&'static str> {
    CLASS_NAMES.get(usize::from(label)).copied()
}

/// The animal-mnist label of a class name, ignoring case and surrounding spaces.
pub fn class_label(name: &str) -> Option<u8> {
    let name = name.trim();
    CLASS_NAMES
        .iter()
        .position(|known| known.eq_ignore_ascii_case(name))
        .and_then(|i| u8::try_from(i).ok())
}

/// Two distinct animal-mnist classes: the first is class 0 of the task, the second class 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClassPair {
    labels: [u8; 2],
}

impl ClassPair {
    /// The pair of two animal-mnist labels, which must differ and be classes.
    pub fn new(first: u8, second: u8) -> Result<Self, DataError> {
        let list = format!("{first},{second}");
        for label in [first, second] {
            if class_name(label).is_none() {
                return Err(DataError::Classes {
                    list,
                    message: format!("label {label} is not an animal-mnist class (0 to 9)"),
                });
            }
        }
        if first == second {
            return Err(twice(list, CLASS_NAMES[usize::from(first)]));
        }
        Ok(ClassPair {
            labels: [first, second],
        })
    }

    /// Parses a comma-separated list of exactly two class names, such as `dog,cat`.
    pub fn parse(list: &str) -> Result<Self, DataError> {
        let error = |message: String| DataError::Classes {
            list: list.to_string(),
            message,
        };
        if list.trim().is_empty() {
            return Err(error(
                "no class named; name two, separated by a comma, such as dog,cat".into(),
            ));
        }
        let names: Vec<&str> = list.split(',').map(str::trim).collect();
        if names.len() != 2 {
            return Err(error(format!(
                "names {} class{}, the experiment compares exactly 2; name two, separated by a \
                 comma, such as dog,cat",
                names.len(),
                if names.len() == 1 { "" } else { "es" },
            )));
        }
        let mut labels = [0u8; 2];
        for (slot, name) in labels.iter_mut().zip(&names) {
            if name.is_empty() {
                return Err(error(
                    "a class name is empty; name two, separated by a comma, such as dog,cat".into(),
                ));
            }
            *slot = class_label(name).ok_or_else(|| error(unknown(name)))?;
        }
        if labels[0] == labels[1] {
            return Err(twice(list.to_string(), CLASS_NAMES[usize::from(labels[0])]));
        }
        Ok(ClassPair { labels })
    }

    /// The animal-mnist labels of task classes 0 and 1.
    pub fn labels(&self) -> [u8; 2] {
        self.labels
    }

    /// The names of task classes 0 and 1.
    pub fn names(&self) -> [&'static str; 2] {
        self.labels.map(|l| CLASS_NAMES[usize::from(l)])
    }

    /// The task class (0 or 1) of an animal-mnist label, or `None` for the other animals.
    pub fn task_label(&self, label: u8) -> Option<usize> {
        self.labels.iter().position(|&l| l == label)
    }
}

/// dog (class 0) against cat (class 1): the experiment's default.
impl Default for ClassPair {
    fn default() -> Self {
        ClassPair { labels: [4, 2] }
    }
}

/// As it parses: `dog,cat`.
impl fmt::Display for ClassPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b] = self.names();
        write!(f, "{a},{b}")
    }
}

impl FromStr for ClassPair {
    type Err = DataError;
    fn from_str(s: &str) -> Result<Self, DataError> {
        ClassPair::parse(s)
    }
}

fn twice(list: String, name: &str) -> DataError {
    DataError::Classes {
        list,
        message: format!("names \"{name}\" twice; name two different classes, such as dog,cat"),
    }
}

fn unknown(name: &str) -> String {
    let closest = CLASS_NAMES
        .iter()
        .map(|known| {
            (
                strsim::levenshtein(known, &name.to_ascii_lowercase()),
                known,
            )
        })
        .min()
        .filter(|&(distance, _)| distance <= 2)
        .map(|(_, known)| format!(" (did you mean \"{known}\"?)"))
        .unwrap_or_default();
    format!(
        "unknown class \"{name}\"{closest}; the classes are {}",
        CLASS_NAMES.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_error(list: &str) -> String {
        match ClassPair::parse(list) {
            Ok(pair) => panic!("{list:?} parsed as {pair}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn first_name_is_class_0() {
        let pair = ClassPair::parse("dog,cat").unwrap();
        assert_eq!(pair.labels(), [4, 2]);
        assert_eq!(pair.names(), ["dog", "cat"]);
        assert_eq!(pair, ClassPair::default());
        assert_eq!(pair.task_label(4), Some(0));
        assert_eq!(pair.task_label(2), Some(1));
        assert_eq!(pair.task_label(0), None);

        let pair: ClassPair = " Zebra , bear ".parse().unwrap();
        assert_eq!(pair.labels(), [9, 0]);
        assert_eq!(pair.to_string(), "zebra,bear");
    }

    #[test]
    fn every_name_round_trips() {
        for (label, name) in CLASS_NAMES.iter().enumerate() {
            let label = u8::try_from(label).unwrap();
            assert_eq!(class_label(name), Some(label));
            assert_eq!(class_name(label), Some(*name));
        }
        assert_eq!(class_name(10), None);
    }

    #[test]
    fn unknown_name_lists_the_classes() {
        assert_eq!(
            parse_error("dog,unicorn"),
            "class list \"dog,unicorn\": unknown class \"unicorn\"; the classes are bear, bird, \
             cat, cow, dog, elephant, giraffe, horse, sheep, zebra"
        );
        assert_eq!(
            parse_error("dgo,cat"),
            "class list \"dgo,cat\": unknown class \"dgo\" (did you mean \"dog\"?); the classes \
             are bear, bird, cat, cow, dog, elephant, giraffe, horse, sheep, zebra"
        );
    }

    #[test]
    fn same_class_twice() {
        assert_eq!(
            parse_error("cat,Cat"),
            "class list \"cat,Cat\": names \"cat\" twice; name two different classes, such as \
             dog,cat"
        );
        assert_eq!(
            ClassPair::new(2, 2).unwrap_err().to_string(),
            "class list \"2,2\": names \"cat\" twice; name two different classes, such as dog,cat"
        );
    }

    #[test]
    fn not_two_names() {
        assert_eq!(
            parse_error("dog"),
            "class list \"dog\": names 1 class, the experiment compares exactly 2; name two, \
             separated by a comma, such as dog,cat"
        );
        assert_eq!(
            parse_error("dog,cat,cow"),
            "class list \"dog,cat,cow\": names 3 classes, the experiment compares exactly 2; \
             name two, separated by a comma, such as dog,cat"
        );
        assert_eq!(
            parse_error(" "),
            "class list \" \": no class named; name two, separated by a comma, such as dog,cat"
        );
        assert_eq!(
            parse_error("dog,"),
            "class list \"dog,\": a class name is empty; name two, separated by a comma, such \
             as dog,cat"
        );
    }

    #[test]
    fn labels_outside_the_classes() {
        assert_eq!(
            ClassPair::new(4, 10).unwrap_err().to_string(),
            "class list \"4,10\": label 10 is not an animal-mnist class (0 to 9)"
        );
    }
}
