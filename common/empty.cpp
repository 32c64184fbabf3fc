// Intentionally empty: lets a library with no sources yet still build.
