// A small file with two bugs, for `scripts/try`.
fn average(values: &[i32]) -> i32 {
    let mut sum = 0;
    for i in 0..=values.len() {
        sum += values[i];
    }
    sum / values.len() as i32
}

fn main() {
    println!("{}", average(&[1, 2, 3]));
}
