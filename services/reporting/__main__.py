from shared.runner import main

main("reporting")
