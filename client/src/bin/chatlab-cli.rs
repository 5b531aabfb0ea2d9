fn main() {
    eprintln!("chatlab-cli: not built yet");
    std::process::exit(1);
}
