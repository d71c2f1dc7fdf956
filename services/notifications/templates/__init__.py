"""The message templates. A package (as are en/ and km/) only so that the files install with the code."""
