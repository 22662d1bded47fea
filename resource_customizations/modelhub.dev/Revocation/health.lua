-- Argo CD health of a modelhub.dev Revocation: Healthy once Enforced (every matching workload is gone),
-- Progressing while the operator tears workloads down or has not seen the latest generation.
local hs = {}

local enforced = nil
if obj.status ~= nil and obj.status.conditions ~= nil then
  for _, c in ipairs(obj.status.conditions) do
    if c.type == "Enforced" then
      enforced = c
    end
  end
end

if enforced == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to enforce the revocation"
  return hs
end

local generation = obj.metadata.generation
local observed = obj.status.observedGeneration
if generation ~= nil and (observed == nil or observed < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end

local message = enforced.message
if message == nil or message == "" then
  message = tostring(enforced.reason)
end
if enforced.status == "True" then
  hs.status = "Healthy"
  if obj.status.enforcementSeconds ~= nil then
    message = message .. " in " .. tostring(obj.status.enforcementSeconds) .. "s"
  end
else
  hs.status = "Progressing"
end
hs.message = message
return hs
