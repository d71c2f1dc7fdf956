"""The composition layer: what runs and operates the services (the `ourvoice` command,
the supervisor behind `ourvoice run`, the registry of the services' parts). It may
import the services; they and the kernel in `shared/` never import it."""
