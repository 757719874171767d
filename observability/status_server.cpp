#include "snakepit/observability/status_server.hpp"

#include "snakepit/observability/diagnosis.hpp"
#include "snakepit/observability/machine_info.hpp"
#include "snakepit/observability/prometheus_text.hpp"

namespace snakepit {

caf::expected<std::unique_ptr<status_server>> status_server::start(options opts,
                                                                   status_source source) {
  std::unique_ptr<status_server> out{new status_server};
  out->metrics_ = std::make_unique<metrics_registry>();
  auto* metrics = out->metrics_.get();
  std::vector<http_endpoint::route> routes{
    {opts.metrics_path, "text/plain; version=0.0.4; charset=utf-8",
     [metrics, source] { return render_prometheus(metrics->snapshot(), source().pools); }},
    {"/status", "application/json", [source] { return to_json(source()); }},
    {"/diagnosis", "application/json",
     [source] { return render_json(diagnose(read_machine_info(), source().pools)); }},
  };
  auto http = http_endpoint::start(std::move(opts.http), std::move(routes));
  if (!http)
    return std::move(http.error());
  out->http_ = std::move(*http);
  return out;
}

} // namespace snakepit
