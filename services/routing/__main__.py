from shared.runner import main

main("routing")
