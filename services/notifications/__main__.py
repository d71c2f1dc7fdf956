from shared.runner import main

main("notifications")
