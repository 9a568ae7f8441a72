fn main() {
    println!("steplens");
}
