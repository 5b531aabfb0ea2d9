fn main() {
    eprintln!("chatlab-lab: not built yet");
    std::process::exit(1);
}
