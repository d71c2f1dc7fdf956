from shared.runner import main

main("intake")
