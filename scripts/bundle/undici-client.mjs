// What banger's Firecracker adapter takes from undici, without the rest of it: undici's index
// loads every dispatcher, mock, cache and interceptor (about 1 MB of source, and the Node
// built-ins they pull in), which cost bangerd several MiB of RSS for one Client. The bundler
// maps "undici" here; a name imported from "undici" that is missing below fails the build.
import Client from "undici/lib/dispatcher/client.js";
// The image store (src/adapters/image-store/http.ts) talks to many hosts: an Agent keeps a pool per origin.
import Agent from "undici/lib/dispatcher/agent.js";
import Dispatcher from "undici/lib/dispatcher/dispatcher.js";
import request from "undici/lib/api/api-request.js";
import errors from "undici/lib/core/errors.js";

// undici's index mixes its API methods into every dispatcher; the adapter only uses request().
Dispatcher.prototype.request = request;

export { Agent, Client, errors };
